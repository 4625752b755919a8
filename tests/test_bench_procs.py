"""What the bench reads of the server's process tree from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

from benchmarks.procs import tree_connections, tree_context_switches


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


_ACCEPT_FIVE = """
import socket, sys, time
listener = socket.socket(fileno=int(sys.argv[1]))
held = [listener.accept()[0] for _ in range(5)]
print("accepted", flush=True)
time.sleep(60)
"""
