"""What the server answers where no dialect can: a request that is not well-formed HTTP/1.1, and a
path outside both dialects.

Nothing in such a request says which client sent it, so the answer is one JSON envelope that both
read, each its own half: the Volcengine ``ResponseMetadata`` with its ``Error``, and the Coze
``code``, ``msg`` and ``detail.logid`` (also sent as ``x-tt-logid``). The error is an ``ErrorCode``
looked up in both dialects' tables, so it means the same in each.

HTTP is parsed by httptools (llhttp, strict): uvicorn answers what it cannot parse from
``send_400_response``, which ``HttpToolsProtocol`` below overrides to write the envelope.

``HttpToolsProtocol`` also writes each answer's head and body in one socket write, where uvicorn
writes them apart (``_HeadWithBody``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _UvicornHttpTools

from convhub.dialects.asgi import RequestIds, Send, respond
from convhub.dialects.coze.errors import COZE_ERRORS
from convhub.dialects.volc.app import SERVICE
from convhub.dialects.volc.errors import VOLC_ERRORS
from convhub.errors import ErrorCode

_REGION = "cn-north-1"  # the Volcengine dialect's own default
_request_ids = RequestIds(upper=True)


def envelope(code: ErrorCode, message: str) -> tuple[int, bytes, bytes]:
    """(HTTP status, body, log ID) of an error answered at the edge."""
    volc_code, code_n, status = VOLC_ERRORS[code]
    coze_code, _coze_status = COZE_ERRORS[code]
    request_id = _request_ids.next()
    body = orjson.dumps(
        {
            "ResponseMetadata": {
                "RequestId": request_id,
                "Action": "",
                "Version": "",
                "Service": SERVICE,
                "Region": _REGION,
                "Error": {"CodeN": code_n, "Code": volc_code, "Message": message},
            },
            "code": coze_code,
            "msg": message,
            "detail": {"logid": request_id},
        }
    )
    return status, body, request_id.encode()


async def not_found(send: Send, path: str) -> None:
    status, body, log_id = envelope(ErrorCode.ROUTE_NOT_FOUND, f"no such path: {path}")
    await respond(send, status, body, [(b"x-tt-logid", log_id)])


class _HeadWithBody(asyncio.Transport):
    """A response's transport that holds the response's head until its body's first write, so
    that both go to the socket in one write.

    uvicorn writes the head at ``http.response.start`` and the body at ``http.response.body``:
    two system calls and two TCP segments, and on loopback the kernel delivers each segment and
    wakes the client inside the write (``python -m benchmarks.answers`` measures the difference).

    The head is the response's first write. Two kinds of request keep uvicorn's transport: one
    that expects a ``100 Continue`` (written before the head, on the app's first read), and a
    HEAD, whose answer has no body to join its head. A response cut short (its app failed after
    the head) has the head written as the connection closes, as uvicorn would have written it.
    """

    __slots__ = ("_held", "_holding", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        # asyncio.BaseTransport's __init__ only keeps ``extra``, which get_extra_info forwards.
        self._transport = transport
        self._held: bytes | None = None
        self._holding = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif self._holding:
            self._holding = False
            self._held = bytes(data)
        else:
            self._transport.write(data)

    def close(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held)
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


class HttpToolsProtocol(_UvicornHttpTools):
    """uvicorn's httptools protocol, answering a request it cannot parse in the edge envelope
    (uvicorn's own answer is plain text), and each answer in one socket write."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        # An upgrade makes no cycle.
        if cycle is not before and not self.expect_100_continue and cycle.scope["method"] != "HEAD":
            cycle.transport = _HeadWithBody(self.transport)

    def send_400_response(self, msg: str) -> None:
        status, body, log_id = envelope(
            ErrorCode.INVALID_PARAM, "the request is not well-formed HTTP/1.1"
        )
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += [name, b": ", value, b"\r\n"]
        content += [
            b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nx-tt-logid: ",
            log_id,
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
        self.transport.write(b"".join(content))
        self.transport.close()
