"""How ``convhub serve``'s HTTP protocol writes its answers to the socket (convhub.edge): each
answer's head and body in one write, and everything uvicorn wrote still written, in order.

The protocol runs on a transport that records what it is given, fed the bytes a client sends."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from convhub.dialects.asgi import Receive, Scope, Send, respond
from convhub.edge import HttpToolsProtocol

App = Callable[[Scope, Receive, Send], Awaitable[None]]
BODY = b'{"ok":true}'


class Recorded(asyncio.Transport):
    """What the protocol wrote and when it closed, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[bytes | str] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.events.append(bytes(data))

    def close(self) -> None:
        self.closing = True
        self.events.append("close")

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def connected(app: App) -> tuple[HttpToolsProtocol, Recorded]:
    """convhub's protocol serving ``app``, as ``convhub serve`` builds it, on a new connection."""
    config = Config(
        app=app, http=HttpToolsProtocol, lifespan="off", proxy_headers=False, access_log=False
    )
    config.load()
    protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
    transport = Recorded()
    protocol.connection_made(transport)
    return protocol, transport


async def answers(app: App, *requests: bytes) -> list[bytes | str]:
    """What the protocol writes for ``requests``, each sent once the one before is answered."""
    protocol, transport = connected(app)
    for request in requests:
        protocol.data_received(request)
        for _ in range(50):
            await asyncio.sleep(0)
            if protocol.cycle is not None and protocol.cycle.response_complete:
                break
    protocol.connection_lost(None)
    return transport.events


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body", False):
        pass
    await respond(send, 200, BODY)


def _writes(events: list[bytes | str]) -> list[bytes]:
    """The recorded writes, without the close."""
    return [event for event in events if isinstance(event, bytes)]


async def _turns(count: int) -> None:
    """Let the loop run ``count`` times: the request's task its reads, answers and writes."""
    for _ in range(count):
        await asyncio.sleep(0)


def _head_and_body(written: bytes) -> tuple[bytes, bytes]:
    head, separator, body = written.partition(b"\r\n\r\n")
    assert separator, written
    return head, body


def test_an_answer_goes_in_one_write_with_its_head_first() -> None:
    events = asyncio.run(answers(ok, b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"))
    writes = _writes(events)
    assert len(writes) == 1, events
    head, body = _head_and_body(writes[0])
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: %d" % len(BODY) in head
    assert body == BODY


def test_answers_on_one_connection_each_go_in_one_write_in_order() -> None:
    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await respond(send, 200, scope["path"].encode())

    events = asyncio.run(
        answers(echo, *(b"GET /%d HTTP/1.1\r\nhost: x\r\n\r\n" % n for n in range(3)))
    )
    writes = _writes(events)
    assert [_head_and_body(write)[1] for write in writes] == [b"/0", b"/1", b"/2"], events


def test_an_expected_continue_is_written_before_the_body_is_read() -> None:
    seen: list[bytes | str] = []

    async def reads(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        seen.append(b"read")
        await respond(send, 200, BODY)

    request = b"POST / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n"

    async def run() -> list[bytes | str]:
        protocol, transport = connected(reads)
        protocol.data_received(request)
        await _turns(10)
        # The client waits for the 100 Continue before it sends the body.
        assert transport.events == [b"HTTP/1.1 100 Continue\r\n\r\n"], transport.events
        protocol.data_received(b"{}")
        await _turns(10)
        protocol.connection_lost(None)
        return transport.events

    events = asyncio.run(run())
    assert seen == [b"read"]
    answer = b"".join(_writes(events[1:]))
    head, body = _head_and_body(answer)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == BODY


def test_a_head_request_has_its_head_written_without_a_body() -> None:
    events = asyncio.run(answers(ok, b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n"))
    writes = _writes(events)
    assert len(writes) == 1, events
    head, body = _head_and_body(writes[0])
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b""


@pytest.mark.parametrize("body", [b"", b"ab"])
def test_a_response_cut_short_has_its_head_written_before_the_close(body: bytes) -> None:
    async def fails(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        headers = [(b"content-length", b"10")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        raise RuntimeError("the app failed after its head")

    events = asyncio.run(answers(fails, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"))
    assert events[-1] == "close", events
    written = b"".join(_writes(events))
    head, sent = _head_and_body(written)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert sent == body  # what uvicorn wrote apart, written whole


def test_an_answered_request_is_freed_without_the_cyclic_garbage_collector() -> None:
    """``convhub serve`` tunes the collector for a service that makes no garbage cycles (server.py):
    a request's objects left to it would wait for its runs, which take milliseconds."""
    request = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"

    async def run() -> weakref.ref[Any]:
        protocol, transport = connected(ok)
        protocol.data_received(request)
        await _turns(20)
        first = weakref.ref(protocol.cycle)
        protocol.data_received(request)  # the next request's cycle takes the first's place
        await _turns(20)
        assert len(_writes(transport.events)) == 2, transport.events
        return first

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        first = asyncio.run(run())
        assert first() is None, gc.get_referrers(first())
    finally:
        if was_enabled:
            gc.enable()
