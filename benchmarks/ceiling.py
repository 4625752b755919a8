"""The plain-ASGI ceiling: a hello-world raw ASGI app answering any request with a small JSON
body (orjson), served by uvicorn exactly as ``convhub serve`` serves convhub (same uvicorn
defaults for loop and HTTP implementation, same workers, no access log, lifespan on).
``--protocol convhub`` serves it through convhub's HTTP protocol instead of uvicorn's own
(``benchmarks.answers`` compares the two)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import orjson
import uvicorn

Message = MutableMapping[str, Any]
_HEADERS = [(b"content-type", b"application/json")]


async def app(
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # read the whole request body, as a real handler must
        message = await receive()
        more = message.get("more_body", False) and message["type"] == "http.request"
    body = orjson.dumps({"ResponseMetadata": {"Action": "Hello"}, "Result": {"ok": True}})
    headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ceiling", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--protocol", choices=("uvicorn", "convhub"), default="uvicorn")
    args = parser.parse_args(argv)
    if args.protocol == "convhub":
        from convhub.edge import HttpToolsProtocol

        http: type[asyncio.Protocol] | str = HttpToolsProtocol
    else:
        http = "auto"
    uvicorn.run(
        "benchmarks.ceiling:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level=args.log_level,
        lifespan="on",
        http=http,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
