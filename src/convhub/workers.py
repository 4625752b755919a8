"""How ``convhub serve`` runs uvicorn: one process, or several workers, each listening on a
socket of its own.

uvicorn's workers share one listening socket, and the process that wakes first accepts every
connection waiting (uvloop accepts until none is left). Measured with ``--workers 2`` under the
bench's 64 connections (2026-11-30), one process held all 64, or 62 and 2, in some windows, and
the other's core went unused.

On Linux each worker here binds a socket of its own to the same address with ``SO_REUSEPORT``,
and the kernel spreads new connections over the listening sockets by a hash of their addresses.
The supervisor's socket is bound first, with the same option, so that a port in use fails the
start once (``_bound``) and port 0 is picked once; it never listens, so no connection waits on it.
Elsewhere ``SO_REUSEPORT`` does not spread connections, and the workers share the socket as
uvicorn has them do.

A connection still waiting to be accepted by a worker that stops goes with that worker's socket
(the kernel resets it); with one shared socket another worker would have taken it.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from uvicorn import Config, Server
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

SPREAD = sys.platform == "linux"
log = logging.getLogger("uvicorn.error")


def serve(config: Config) -> None:
    """Serve ``config`` until told to stop (with several workers, ``config.app`` is an import
    string); as ``uvicorn.run``, but for the workers' sockets."""
    if config.workers > 1:
        _several(config)
        return
    server = Server(config)
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def _several(config: Config) -> None:
    if not SPREAD:
        multiprocess.Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    shared = _bound(config)
    with _workers_listening_alone():
        multiprocess.Multiprocess(config, sockets=[shared]).run()


class Worker(multiprocess.Process):
    """uvicorn's worker process, which listens on a socket of its own."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover
        # runs in the worker process (coverage does not follow it there)
        super().target([own_listener(shared) for shared in sockets or ()])


def own_listener(shared: socket.socket) -> socket.socket:
    """A socket bound where ``shared`` is (``SO_REUSEPORT``, as ``shared`` is), in its stead."""
    own = socket.socket(shared.family, shared.type)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    own.bind(shared.getsockname())
    shared.close()
    return own


@contextmanager
def _workers_listening_alone() -> Iterator[None]:
    # uvicorn's supervisor makes each worker, first and restarted, as ``Process``.
    made = multiprocess.Process
    multiprocess.Process = Worker  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = made  # type: ignore[misc]


def _bound(config: Config) -> socket.socket:
    """``config.bind_socket``, with ``SO_REUSEPORT`` set before the bind. A socket without it
    is bound there first, which fails while anything holds the port, even another server whose
    sockets have ``SO_REUSEPORT`` too: two servers on one port would share its connections."""
    family = socket.AF_INET6 if config.host and ":" in config.host else socket.AF_INET
    with socket.socket(family=family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((config.host, config.port))
        except OSError as exc:
            log.error(exc)
            sys.exit(STARTUP_FAILURE)
        address = probe.getsockname()  # port 0: the port picked
    sock = socket.socket(family=family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    host = f"[{config.host}]" if family == socket.AF_INET6 else config.host
    log.info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit); each worker listens on a "
        "socket of its own",
        host,
        address[1],
    )
    sock.set_inheritable(True)
    return sock
