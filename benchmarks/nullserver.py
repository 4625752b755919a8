"""A canned-response HTTP/1.1 server (uvloop, raw Protocol), far cheaper than any ASGI stack.

The load generator aimed at it runs flat out, so the rate it reaches is what the generator can
do on this box (a lower bound if this server saturates first): it must exceed the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import cast

import uvloop

from benchmarks.http1 import FramingError, next_message

_BODY = b'{"status":"ok"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class CannedProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        pos = answered = 0
        try:
            while (found := next_message(data, pos, missing=0)) is not None:
                pos = found[1]
                answered += 1
        except FramingError:
            if self.transport is not None:
                self.transport.close()
            return
        self.buffer = data[pos:]
        if answered and self.transport is not None:
            self.transport.write(RESPONSE * answered)


async def serve(port: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(CannedProtocol, "127.0.0.1", port, backlog=1024)
    async with server:
        await asyncio.sleep(seconds)  # bounded: the benchmark kills it sooner anyway


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nullserver", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    uvloop.run(serve(args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
