"""convhub's threads carry their names into the kernel, where /proc, top -H and perf read them."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from convhub.threads import named_thread
from tests.support import wait_until_gone


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl are Linux's")
def test_a_named_thread_is_known_to_the_kernel_by_its_name() -> None:
    seen: dict[str, str] = {}
    release = threading.Event()

    def work() -> None:
        seen["python"] = threading.current_thread().name
        seen["kernel"] = Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text()
        release.wait(10)

    thread = named_thread(work, "convhub-checkpointer")
    assert thread.daemon and not thread.is_alive()
    thread.start()
    try:
        for _ in range(1000):
            if "kernel" in seen:
                break
            time.sleep(0.01)
        assert seen["python"] == "convhub-checkpointer"
        assert seen["kernel"] == "convhub-checkpo\n"  # the kernel keeps 15 characters
        main = Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text()
        assert main != seen["kernel"]  # the thread's own name, not the process's
    finally:
        release.set()
        thread.join()
        wait_until_gone(thread)
