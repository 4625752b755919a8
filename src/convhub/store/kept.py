"""Rows the read side keeps in memory, each with the row version it was read at.

A reader asks the database for the current versions of the rows it needs (one narrow read of an
index) and reads in full only the rows whose version it has not kept. Every UPDATE raises a
row's version, so a kept row is used only while it is still exactly what the database holds:
the answer is the same as a full read, in one process or in many. Only read-only units fill it
(a write unit may still roll back what it read).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class KeptRows(Generic[K, V]):
    """At most ``capacity`` values by key, the oldest kept dropped first. Lookups take no lock
    (a dict read is atomic); the read threads of PostgreSQL serialise only their stores."""

    __slots__ = ("_capacity", "_lock", "_rows")

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        # An OrderedDict: dropping a plain dict's first entry again and again leaves holes
        # that each later ``next(iter(...))`` walks over (evictions grew slower and slower).
        self._rows: OrderedDict[K, tuple[int, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, version: int) -> V | None:
        found = self._rows.get(key)
        return found[1] if found is not None and found[0] == version else None

    def resolve(self, versions: Iterable[tuple[K, int]]) -> tuple[list[V | K], list[K]]:
        """For each (key, version) in order, the value kept at that version, or the key itself
        where none is; and those keys."""
        rows = self._rows
        found: list[V | K] = []
        missing: list[K] = []
        for key, version in versions:
            entry = rows.get(key)
            if entry is not None and entry[0] == version:
                found.append(entry[1])
            else:
                found.append(key)
                missing.append(key)
        return found, missing

    def put(self, key: K, version: int, value: V) -> None:
        with self._lock:
            rows = self._rows
            if key not in rows and len(rows) >= self._capacity:
                rows.popitem(last=False)
            rows[key] = (version, value)

    def __len__(self) -> int:
        return len(self._rows)
