"""The sliding-window counter of the ``limits`` library, kept in this process's memory.

Two counts per key, this second's and the last one's; the last one weighs as much as it still lies
within the past second. A hit is allowed while ``floor(last * share + this) + 1 <= limit``: the rule
of ``limits``' ``SlidingWindowCounterRateLimiter``, so a process without Redis admits what one with
Redis would. ``limits``' own ``MemoryStorage`` spends about 13 µs a hit behind asyncio locks, string
keys and expiry tasks, about a tenth of a write request's Python; this spends about one.

Only the event loop calls it: no locks. Keys are (account, operation) of authenticated callers,
so there are as many as accounts times operations, and they are kept without expiry.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class MemoryWindows:
    __slots__ = ("_clock", "_windows")

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        # (account, operation) -> [second, hits in it, hits in the second before it]
        self._windows: dict[tuple[int, str], list[int]] = {}

    def hit(self, limit: int, account_id: int, operation: str) -> bool:
        """Count one request against ``limit`` a second; False, counting nothing, when over."""
        now = self._clock()
        second = math.floor(now)
        key = (account_id, operation)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = [second, 0, 0]
        elif window[0] != second:
            window[2] = window[1] if window[0] == second - 1 else 0
            window[1] = 0
            window[0] = second
        if math.floor(window[2] * (1.0 - (now - second)) + window[1]) + 1 > limit:
            return False
        window[1] += 1
        return True
