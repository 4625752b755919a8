"""What the bench reads of the server's process tree from /proc."""

from __future__ import annotations

import os
import threading
import time

from benchmarks.procs import tree_context_switches


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
