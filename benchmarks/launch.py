"""How each server is started: convhub and the plain-ASGI ceiling, on uvicorn or on granian.

On uvicorn, convhub runs as ``convhub serve`` does in production. On granian, it runs as
``granian --interface asgi --factory convhub.server:app_from_env`` with the ``CONVHUB_*``
variables ``convhub serve`` would set (the database is migrated and its account made by the
benchmark's ``prepare`` before, which ``serve`` would otherwise do first). Both servers use the
event loop uvicorn's ``auto`` picks here, HTTP/1.1, no access log.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

import sqlalchemy as sa

from benchmarks.procs import HOST

HTTP_SERVERS = ("uvicorn", "granian")
NO_LIMITS = "*=10000000"  # limits stay in the request path but never trip
Command = tuple[list[str], dict[str, str]]  # python arguments, environment added


def uvicorn_defaults() -> tuple[str, str]:
    """What uvicorn's loop="auto" and http="auto" resolve to here (its own rule)."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def version(http_server: str) -> str:
    try:
        return importlib.metadata.version(http_server)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _granian(target: str, port: int, workers: int, *, factory: bool) -> list[str]:
    loop, _ = uvicorn_defaults()
    return [
        "-m", "granian", "--interface", "asgi", *(["--factory"] if factory else []),
        f"--host={HOST}", f"--port={port}", f"--workers={workers}", f"--loop={loop}",
        "--http=1", "--no-access-log", "--log-level=warning", target,
    ]  # fmt: skip


def convhub(http_server: str, url: str, port: int, workers: int) -> Command:
    if http_server == "granian":
        env = {"CONVHUB_DATABASE_URL": url, "CONVHUB_RATE_LIMITS": NO_LIMITS}
        return _granian("convhub.server:app_from_env", port, workers, factory=True), env
    argv = [
        "-m", "convhub.cli", "serve", f"--host={HOST}", f"--port={port}",
        f"--database-url={url}", f"--workers={workers}", f"--rate-limits={NO_LIMITS}",
        "--no-access-log", "--log-level=warning",
    ]  # fmt: skip
    return argv, {}


def ceiling(http_server: str, port: int, workers: int) -> Command:
    if http_server == "granian":
        return _granian("benchmarks.ceiling:app", port, workers, factory=False), {}
    return ["-m", "benchmarks.ceiling", f"--port={port}", f"--workers={workers}"], {}


def leases_left(url: str) -> int:
    """ID-node leases still held: each worker gives its own back on lifespan shutdown, after
    draining its writer, so any left after a server stopped mean that shutdown did not run."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM node_leases")).scalar_one())
    finally:
        engine.dispose()
