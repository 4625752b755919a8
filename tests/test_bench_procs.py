"""What the bench reads of the server's process tree from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import uvicorn
from benchmarks.ceiling import app as ceiling_app
from benchmarks.procs import (
    tree_connections,
    tree_context_switches,
    tree_thread_cpu_seconds,
    writer_batches,
)

from convhub.threads import named_thread
from tests.support import LiveServer, VolcClient, free_port, wait_until_gone


def test_context_switches_count_every_live_thread_of_the_process() -> None:
    """A thread that sleeps 50 times gives up its core at least 50 times: counted with the
    process's, though the main thread only waited for it once."""
    before = tree_context_switches(os.getpid())
    napped, done = threading.Event(), threading.Event()

    def naps() -> None:
        for _ in range(50):
            time.sleep(0.001)
        napped.set()
        done.wait()

    thread = threading.Thread(target=naps)
    thread.start()
    try:
        assert napped.wait(10)
        assert tree_context_switches(os.getpid()) - before >= 50
    finally:
        done.set()
        thread.join()
    assert tree_context_switches(2**22 + 12345) == 0  # no such process: nothing, no error


def test_thread_cpu_is_counted_by_the_name_each_thread_gave_the_kernel() -> None:
    """A thread that spins for 0.3 s of CPU under its own name is charged that much under it;
    the process's first thread, which waits meanwhile, is ``main``."""
    spun, done = threading.Event(), threading.Event()

    def spins() -> None:
        until = time.thread_time() + 0.3
        while time.thread_time() < until:
            pass
        spun.set()
        done.wait()

    before = tree_thread_cpu_seconds(os.getpid())
    thread = named_thread(spins, "bench-spinner")
    thread.start()
    try:
        assert spun.wait(30)
        after = tree_thread_cpu_seconds(os.getpid())
        assert 0.25 <= after["bench-spinner"] - before.get("bench-spinner", 0.0) <= 1.0
        assert after["main"] - before["main"] < 0.25
    finally:
        done.set()
        thread.join()
        wait_until_gone(thread)
    assert tree_thread_cpu_seconds(2**22 + 12345) == {}  # no such process: nothing, no error


def test_connections_are_counted_for_the_process_that_holds_them() -> None:
    """A child that accepts 5 connections holds 5 on the port; this process, which holds their
    other ends (on other local ports) and the listening socket, holds none on it."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        child = subprocess.Popen(
            [sys.executable, "-c", _ACCEPT_FIVE, str(listener.fileno())],
            pass_fds=[listener.fileno()],
            stdout=subprocess.PIPE,
        )
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
        try:
            assert child.stdout is not None and child.stdout.readline() == b"accepted\n"
            assert tree_connections(os.getpid(), port) == [5]  # the child is in this tree
            assert tree_connections(child.pid, port) == [5]
            assert tree_connections(child.pid, port + 1 if port < 65535 else port - 1) == []
        finally:
            for client in clients:
                client.close()
            child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()


def test_writer_batches_are_read_from_the_servers_metrics(
    server: LiveServer, volc: VolcClient
) -> None:
    """Three creates one after another are three batches of one write; six at once are six
    writes, in as many batches as the writer made of them (one to six)."""
    body = {
        "AppId": volc.tenant.app_id,
        "OwnerUserId": 1,
        "ConversationCoreInfo": {"ConversationType": 2},
    }
    before = writer_batches(server.port)
    assert before is not None
    for _ in range(3):
        volc.ok("CreateConversation", body)
    after = writer_batches(server.port)
    assert after is not None
    assert (after[0] - before[0], after[1] - before[1]) == (3, 3)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: volc.ok("CreateConversation", body), range(6)))
    last = writer_batches(server.port)
    assert last is not None
    assert last[0] - after[0] == 6
    assert 1 <= last[1] - after[1] <= 6


def test_the_sum_is_the_writes_and_the_count_the_batches() -> None:
    """Read from the histogram's two series by name, whatever surrounds them."""
    text = (
        "# TYPE convhub_writer_batch_size histogram\n"
        'convhub_writer_batch_size_bucket{le="64.0"} 4.0\n'
        "convhub_writer_batch_size_count 4.0\n"
        "convhub_writer_batch_size_sum 250.0\n"
        "convhub_writer_batch_size_created 1.7e9\n"
    )
    with _served(_answering(text.encode())) as port:
        assert writer_batches(port) == (250.0, 4.0)


def test_a_server_without_the_writers_metrics_gives_none() -> None:
    """The ceiling answers /metrics with its hello-world; nothing is listening: no error."""
    with _served(ceiling_app) as port:
        assert writer_batches(port) is None
    assert writer_batches(port) is None


def _answering(body: bytes) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


@contextmanager
def _served(app: Any) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=20)


_ACCEPT_FIVE = """
import socket, sys, time
listener = socket.socket(fileno=int(sys.argv[1]))
held = [listener.accept()[0] for _ in range(5)]
print("accepted", flush=True)
time.sleep(60)
"""
