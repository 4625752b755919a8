"""Minimal HTTP/1.1 framing shared by the load generator, the setup client and the null server.

Only what the benchmark needs: messages framed by ``Content-Length`` (no chunked bodies).
"""

from __future__ import annotations

HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"content-length:"


class FramingError(Exception):
    """A message the benchmark cannot frame (no Content-Length, chunked, garbage)."""


def content_length(head: bytes, missing: int | None = None) -> int:
    """The Content-Length of a message head (start line and headers, without the blank line);
    ``missing`` when there is none (a bodiless request), else a ``FramingError``."""
    lowered = head.lower()
    start = lowered.find(_CONTENT_LENGTH)
    if start < 0:
        if missing is not None:
            return missing
        raise FramingError(f"no Content-Length in {head[:80]!r}")
    start += len(_CONTENT_LENGTH)
    end = lowered.find(b"\r\n", start)
    value = lowered[start : end if end >= 0 else len(lowered)].strip()
    if not value.isdigit():
        raise FramingError(f"bad Content-Length {value[:20]!r}")
    return int(value)


def next_message(data: bytes, pos: int, missing: int | None = None) -> tuple[int, int] | None:
    """``(head_end, message_end)`` of the message starting at ``pos``, or None when incomplete.

    ``head_end`` is the index of the first body byte.
    """
    blank = data.find(HEAD_END, pos)
    if blank < 0:
        return None
    body_start = blank + len(HEAD_END)
    end = body_start + content_length(data[pos:blank], missing)
    if end > len(data):
        return None
    return body_start, end


def status_code(data: bytes, pos: int) -> int:
    """The status of a response whose status line starts at ``pos`` (``HTTP/1.1 200 OK``)."""
    if data[pos : pos + 5] != b"HTTP/":
        raise FramingError(f"not a response: {data[pos : pos + 40]!r}")
    return int(data[pos + 9 : pos + 12])


def build_request(*, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """Raw request bytes: the given headers (Host first if present) plus Content-Length."""
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
