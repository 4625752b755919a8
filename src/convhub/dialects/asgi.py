"""What both dialects do the same way at the ASGI edge: read a bounded body, parse a JSON object,
answer JSON (and hold parts of answers already encoded), number requests, and say what became of
each one (``Exchange``). Dialects share this
module; they never import each other."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from convhub.errors import ConvhubError, ErrorCode

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_JSON = (b"content-type", b"application/json")

# The action of a request that names none the dialect declares: metrics get a bounded set of labels.
UNKNOWN_ACTION = "unknown"


@dataclass(slots=True)
class Exchange:
    """What became of one request, as its dialect answered it: filled at the dialect's single exit
    and returned to the observer (``convhub.observe``), which makes the metrics and the log line.

    ``action`` is a declared action or operation (else ``UNKNOWN_ACTION``), ``outcome`` ``"ok"`` or
    the ``ErrorCode`` value, ``request_id`` the RequestId or logid the client saw."""

    dialect: str
    request_id: str
    action: str = UNKNOWN_ACTION
    account: int | None = None
    outcome: str = "ok"
    status: int = 200

    def failed(self, code: ErrorCode, status: int) -> None:
        self.outcome = code.value
        self.status = status


Dialect = Callable[[Scope, Receive, Send], Awaitable[Exchange]]


class RequestIds:
    """``YYYYMMDDhhmmss`` + 6 hex of process + 12 hex of counter: unique, cheap, sortable."""

    def __init__(self, *, upper: bool = False) -> None:
        prefix = os.urandom(3).hex()
        self._prefix = prefix.upper() if upper else prefix
        self._format = "012X" if upper else "012x"
        self._counter = itertools.count()
        self._second = -1
        self._stamp = ""

    def next(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
        sequence = format(next(self._counter) & 0xFFFFFFFFFFFF, self._format)
        return f"{self._stamp}{self._prefix}{sequence}"


# Limits count calls per second: a refused caller may try again in the next one.
RETRY_NEXT_SECOND = ((b"retry-after", b"1"),)


async def respond(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def header_map(scope: Scope) -> dict[str, str]:
    """Lower-case header names to values. A request may carry one Authorization header: both
    dialects refuse a second, whichever one a proxy or client meant."""
    headers: dict[str, str] = {}
    for key, value in scope["headers"]:
        name = key.decode("latin-1").lower()
        if name == "authorization" and name in headers:
            raise ConvhubError(ErrorCode.MISSING_AUTH, "more than one Authorization header")
        headers[name] = value.decode("latin-1")
    return headers


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ConvhubError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConvhubError(ErrorCode.INVALID_PARAM, "the client went away mid-body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ConvhubError(ErrorCode.PAYLOAD_TOO_LARGE, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def kept_fragment(value: Any) -> orjson.Fragment:
    """``value`` serialized once, for an answer to write as it is (held on an object the store
    keeps): a copy of exactly its length, as the bytes ``orjson.dumps`` answers hold a buffer of
    4 KB whatever their length, which each kept object would otherwise hold on to."""
    return orjson.Fragment(bytes(memoryview(orjson.dumps(value))))


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = _parse_json_slowly(raw)
    if type(body) is not dict:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "the body must be a JSON object")
    return body


def _parse_json_slowly(raw: bytes) -> Any:
    # orjson refuses some valid JSON (nesting past its limit, lone surrogate escapes); the
    # standard parser tells those apart from a body that is not JSON at all.
    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        json.loads(raw, parse_constant=refuse)
    except RecursionError:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "the body nests too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise ConvhubError(ErrorCode.MALFORMED_JSON, "the body is not valid JSON") from None
    raise ConvhubError(
        ErrorCode.INVALID_PARAM, "the body holds a value that cannot be read (nesting or escapes)"
    )
