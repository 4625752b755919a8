"""Rows the read side keeps in memory, each with the row version it was read at.

A reader asks the database for the current versions of the rows it needs (one narrow read of an
index) and reads in full only the rows whose version it has not kept. Every UPDATE raises a
row's version, so a kept row is used only while it is still exactly what the database holds:
the answer is the same as a full read, in one process or in many. Only read-only units fill it
(a write unit may still roll back what it read).

A process's writer forgets each row it changed before it answers, and readers skip the versions
while the write clocks say nobody else wrote (``valid_at``; see store/clock.py). A reader that
read a row before such a forget must not keep it after: each forget raises ``generation`` and
notes it beside each key it forgot, and a store carries the generation its reader began at. Only
the keys forgotten since are left out of a store, so that a reader overtaken by a forget of other
rows (on PostgreSQL, what is heard of other processes' writes comes every few milliseconds while
they write) still keeps what it read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from convhub.store.clock import WriteClock

K = TypeVar("K")
V = TypeVar("V")

_value = itemgetter(1)  # of a kept (version, value)
# Keys forgotten one by one that are remembered as such; past this many, the memory is cleared
# and every reader in flight keeps nothing instead.
FORGOTTEN_KEYS = 10_000


def in_order(found: Iterable[V | K], read: Mapping[K, V], kind: type[V]) -> list[V]:
    """What ``resolve`` found, each key in it replaced by its value in ``read`` (the rows read in
    full after it). A key ``read`` lacks, its row gone between the two reads, is left out, as if
    the first read had not seen it."""
    return [
        item if isinstance(item, kind) else read[item]  # type: ignore[index]  # not a V: a K
        for item in found
        if isinstance(item, kind) or item in read
    ]


class KeptRows(Generic[K, V]):
    """At most ``capacity`` values by key, the oldest kept dropped first. Lookups take no lock
    (a dict read is atomic); stores and forgets take turns."""

    __slots__ = (
        "_capacity", "_floor", "_forgotten", "_lock", "_rows", "clock", "generation", "valid_at",
    )  # fmt: skip

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self._capacity = capacity
        # An OrderedDict: dropping a plain dict's first entry again and again leaves holes
        # that each later ``next(iter(...))`` walks over (evictions grew slower and slower).
        self._rows: OrderedDict[K, tuple[int, V]] = OrderedDict()
        self._lock = threading.Lock()
        self.generation = 0  # raised by every forget
        self._forgotten: dict[K, int] = {}  # key -> the generation that forgot it last
        self._floor = 0  # readers that began before this generation keep nothing
        # The write clocks at which every row kept is known to be current; None: ask versions.
        self.valid_at: object | None = None
        self.clock: WriteClock | None = None  # what keeps ``valid_at``, if anything does

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

    def resolve_current(self, keys: Sequence[K]) -> tuple[list[V | K], list[K]]:
        """``resolve`` for keys whose kept values are known current (``valid_at``)."""
        rows = self._rows
        entries = list(map(rows.get, keys))
        if None not in entries:  # all kept: no loop in Python
            return list(map(_value, entries)), []  # type: ignore[arg-type]
        found: list[V | K] = []
        missing: list[K] = []
        for key, entry in zip(keys, entries, strict=True):
            if entry is not None:
                found.append(entry[1])
            else:
                found.append(key)
                missing.append(key)
        return found, missing

    def put_many(self, rows: Iterable[tuple[K, int, V]], *, since: int) -> None:
        """Keep each (key, version, value), read by a reader that began at generation ``since``:
        not a key forgotten after it began (what it read may be what was forgotten)."""
        with self._lock:
            if since < self._floor:
                return
            kept = self._rows
            forgotten = self._forgotten if self.generation != since else None
            for key, version, value in rows:
                if forgotten and forgotten.get(key, 0) > since:
                    continue
                if key not in kept and len(kept) >= self._capacity:
                    kept.popitem(last=False)
                kept[key] = (version, value)

    def forget(self, keys: Iterable[K]) -> None:
        with self._lock:
            self.generation += 1
            generation = self.generation
            rows, forgotten = self._rows, self._forgotten
            for key in keys:
                rows.pop(key, None)
                forgotten[key] = generation
            if len(forgotten) > FORGOTTEN_KEYS:
                forgotten.clear()
                self._floor = generation

    def forget_all(self) -> None:
        with self._lock:
            self.generation += 1
            self._rows.clear()
            self._forgotten.clear()
            self._floor = self.generation

    def __len__(self) -> int:
        return len(self._rows)
