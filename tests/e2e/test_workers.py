"""``convhub serve --workers N``: each worker listens on a socket of its own, and the kernel
spreads the connections over them (src/convhub/workers.py). Linux only, as that spreading is:
the sockets each process holds are read from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from benchmarks.procs import ESTABLISHED, LISTEN, held, sockets_on, tree_pids

from tests.e2e.test_volc_sdks import Served, assert_stopped_cleanly, convhub_serve
from tests.outages import eventually
from tests.support import child_env, convhub_command, required_postgres

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT spreads on Linux")

CONNECTIONS = 64


def _port(served: Served) -> int:
    return int(served.host.rsplit(":", 1)[1])


def _workers_up(served: Served) -> bool:
    return served.log().count("Application startup complete") == 2


def test_each_worker_listens_on_a_socket_of_its_own_and_takes_a_share_of_connections(
    tmp_path: Path,
) -> None:
    """With one shared socket (uvicorn's way) the worker that woke first took all 64 in 2 of 3
    tries; here each holds its own listening socket, and both serve a fair share."""
    with required_postgres() as url:
        args = ["--workers", "2", "--database-url", url, "--no-access-log"]
        with convhub_serve(args, tmp_path, ready=_workers_up) as served:
            port = _port(served)
            supervisor = served.process.pid
            workers = [pid for pid in tree_pids(supervisor) if pid != supervisor]
            # A worker listens just after its application's startup: both have, in a moment.
            listening = eventually(lambda: sockets_on(port, LISTEN), lambda found: len(found) >= 2)
            by_worker = {pid: held(pid, listening) for pid in workers}
            listeners = [sockets for sockets in by_worker.values() if sockets]
            assert len(listeners) == 2, by_worker
            assert len(set().union(*listeners)) == 2, by_worker
            assert not held(supervisor, listening)  # the supervisor's never listens

            clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
            try:
                for client in clients:
                    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: convhub\r\n\r\n")
                for client in clients:
                    client.settimeout(10)
                    assert client.recv(64).startswith(b"HTTP/1.1 200"), "every worker answers"
                established = sockets_on(port, ESTABLISHED)
                share = Counter({pid: len(held(pid, established)) for pid in workers})
            finally:
                for client in clients:
                    client.close()
            assert sum(share.values()) == CONNECTIONS, share
            # Spread by a hash: fewer than 12 of 64 on one of two has odds below one in ten million.
            assert min(share[pid] for pid in by_worker if by_worker[pid]) >= 12, share

            # A second server on the port fails to start, though its sockets would share it.
            second = subprocess.Popen(
                [*convhub_command(), "serve", "--port", str(port), *args],
                cwd=tmp_path,
                env=child_env(),
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                _, said = second.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(second.pid, signal.SIGKILL)  # it and its workers
                second.wait()
                pytest.fail("a second serve on the port started")
            assert second.returncode != 0, said
            assert "address already in use" in said.lower(), said
    assert_stopped_cleanly(served, workers=2)
