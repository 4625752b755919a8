"""convhub's own threads, named for the kernel as well as for Python.

Before Python 3.14 a thread's name is Python's alone: ``top -H``, ``perf`` and ``/proc`` list every
thread of the server as ``python``. Each thread made here names itself for the kernel first (its
first 15 characters, the kernel's limit; Linux only), so that the writer's share of the server's
CPU can be read from ``/proc/<pid>/task/*/comm`` (the bench prints it) or seen in ``top -H``.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable

_PR_SET_NAME = 15  # prctl(2)
_KERNEL_NAME_BYTES = 15


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:  # the C library's, as the interpreter links it (no search for the file)
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_SET = _prctl()


def name_this_thread(name: str) -> None:
    """Give the calling thread ``name`` in the kernel too (where it can: Linux)."""
    if _SET is not None:
        _SET(_PR_SET_NAME, name.encode()[:_KERNEL_NAME_BYTES], 0, 0, 0)


def named_thread(target: Callable[[], object], name: str) -> threading.Thread:
    """A daemon thread (not started) that runs ``target`` under ``name``, in Python and in the
    kernel."""

    def run() -> None:
        name_this_thread(name)
        target()

    return threading.Thread(target=run, name=name, daemon=True)
