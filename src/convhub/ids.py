"""64-bit, time-ordered IDs that several processes mint without talking to each other.

Layout (63 bits, always positive): 41 bits of milliseconds since 2020-01-01 UTC, 10 bits of node,
12 bits of sequence. A node number is leased from the database (``store/nodes.py``), so two live
processes never share one; within a node the sequence makes IDs unique and the clock is never
allowed to run backwards. 4,096 IDs per millisecond per node. While the lease is not held (lost,
or not renewed for too long), ``next_id`` refuses rather than risk another process's node.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from convhub.errors import ConvhubError, ErrorCode

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
NODE_BITS = 10
SEQUENCE_BITS = 12
MAX_NODE = (1 << NODE_BITS) - 1
_MAX_SEQUENCE = (1 << SEQUENCE_BITS) - 1


class SnowflakeIds:
    def __init__(
        self,
        node: int,
        clock_ms: Callable[[], int] | None = None,
        *,
        held: Callable[[], bool] | None = None,
    ) -> None:
        if not 0 <= node <= MAX_NODE:
            raise ValueError(f"node must be in 0..{MAX_NODE}, got {node}")
        self._node = node
        self._held = held
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._last_ms = -1
        self._sequence = 0
        self._lock = threading.Lock()

    @property
    def node(self) -> int:
        return self._node

    def rebind(self, node: int) -> None:
        """Continue on another node (after the lease on this one was lost)."""
        if not 0 <= node <= MAX_NODE:
            raise ValueError(f"node must be in 0..{MAX_NODE}, got {node}")
        with self._lock:
            self._node = node

    def next_id(self) -> int:
        if self._held is not None and not self._held():
            raise ConvhubError(
                ErrorCode.UNAVAILABLE, "this process holds no ID node right now; retry later"
            )
        with self._lock:
            now = max(self._clock_ms() - EPOCH_MS, self._last_ms)
            if now == self._last_ms:
                self._sequence = (self._sequence + 1) & _MAX_SEQUENCE
                if self._sequence == 0:
                    now += 1  # borrow the next millisecond rather than spin
            else:
                self._sequence = 0
            self._last_ms = now
            return (
                (now << (NODE_BITS + SEQUENCE_BITS))
                | (self._node << SEQUENCE_BITS)
                | self._sequence
            )


def id_time_ms(snowflake: int) -> int:
    """Unix milliseconds at which an ID was minted."""
    return (snowflake >> (NODE_BITS + SEQUENCE_BITS)) + EPOCH_MS
