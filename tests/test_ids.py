"""Snowflake IDs: 41 bits of milliseconds, 10 of node, 12 of sequence; leased nodes."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from convhub.errors import ConvhubError, ErrorCode
from convhub.ids import EPOCH_MS, MAX_NODE, NODE_BITS, SEQUENCE_BITS, SnowflakeIds, id_time_ms
from convhub.store.engine import create_database_engine
from convhub.store.nodes import NodeLease, NodesExhausted
from convhub.store.tables import node_leases

NOW_MS = EPOCH_MS + 200_000_000_000  # some day in 2026
PER_MS = 1 << SEQUENCE_BITS


def clock_of(values: list[int]) -> Callable[[], int]:
    """A clock that answers ``values`` in turn, then keeps answering the last one."""
    it: Iterator[int] = iter(values)
    last = [values[0]]

    def clock() -> int:
        last[0] = next(it, last[0])
        return last[0]

    return clock


def node_of(snowflake: int) -> int:
    return (snowflake >> SEQUENCE_BITS) & MAX_NODE


def assert_strictly_increasing(ids: list[int]) -> None:
    assert all(a < b for a, b in itertools.pairwise(ids))


def test_real_clock_ids_are_unique_increasing_and_in_range() -> None:
    generator = SnowflakeIds(node=7)
    ids = [generator.next_id() for _ in range(200_000)]
    assert_strictly_increasing(ids)
    assert len(set(ids)) == len(ids)
    assert ids[0] > 0
    assert ids[-1] < 1 << 63
    assert all(node_of(i) == 7 for i in ids[::1000])


def test_id_carries_its_time_and_node() -> None:
    snowflake = SnowflakeIds(node=MAX_NODE, clock_ms=lambda: NOW_MS).next_id()
    assert id_time_ms(snowflake) == NOW_MS
    assert node_of(snowflake) == MAX_NODE
    assert snowflake & (PER_MS - 1) == 0
    assert snowflake.bit_length() <= 63


def test_ids_exceed_2_53_today() -> None:
    # Clients that parse IDs as doubles lose digits: the wire tests rely on IDs this large.
    assert SnowflakeIds(node=0).next_id() > 1 << 53


def test_distinct_nodes_never_collide_at_the_same_instant() -> None:
    generators = [SnowflakeIds(node=n, clock_ms=lambda: NOW_MS) for n in (0, 1, 2, MAX_NODE)]
    batches = [{g.next_id() for _ in range(3 * PER_MS)} for g in generators]
    assert all(len(b) == 3 * PER_MS for b in batches)
    union = set().union(*batches)
    assert len(union) == sum(len(b) for b in batches)


def test_clock_going_backwards_neither_repeats_nor_decreases() -> None:
    clock = clock_of([NOW_MS, NOW_MS + 5, NOW_MS + 5, NOW_MS - 1000, NOW_MS - 1000, NOW_MS + 2])
    generator = SnowflakeIds(node=3, clock_ms=clock)
    ids = [generator.next_id() for _ in range(10)]
    assert_strictly_increasing(ids)
    # While the clock is behind, IDs stay on the last millisecond that was used.
    assert id_time_ms(ids[3]) == NOW_MS + 5
    assert id_time_ms(ids[-1]) == NOW_MS + 5


def test_sequence_overflow_borrows_the_next_millisecond() -> None:
    generator = SnowflakeIds(node=9, clock_ms=lambda: NOW_MS)
    ids = [generator.next_id() for _ in range(PER_MS + 1)]
    assert_strictly_increasing(ids)
    assert {id_time_ms(i) for i in ids[:PER_MS]} == {NOW_MS}
    assert id_time_ms(ids[PER_MS]) == NOW_MS + 1
    assert ids[PER_MS] & (PER_MS - 1) == 0
    more = [generator.next_id() for _ in range(3 * PER_MS)]  # several borrowed milliseconds
    assert_strictly_increasing(ids + more)
    assert id_time_ms(more[-1]) == NOW_MS + 4
    assert all(node_of(i) == 9 for i in ids + more)


def test_borrowed_millisecond_is_not_reused_when_the_clock_catches_up() -> None:
    clock = clock_of([NOW_MS] * (PER_MS + 1) + [NOW_MS + 1, NOW_MS + 1, NOW_MS + 2])
    generator = SnowflakeIds(node=1, clock_ms=clock)
    ids = [generator.next_id() for _ in range(PER_MS + 4)]
    assert_strictly_increasing(ids)
    assert len(set(ids)) == len(ids)


def test_concurrent_threads_get_distinct_ids() -> None:
    generator = SnowflakeIds(node=4)
    results: list[list[int]] = [[] for _ in range(4)]

    def mint(out: list[int]) -> None:
        out.extend(generator.next_id() for _ in range(20_000))

    threads = [threading.Thread(target=mint, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in results for i in out]
    assert len(set(every)) == len(every)
    for out in results:
        assert_strictly_increasing(out)


@pytest.mark.parametrize("node", [-1, MAX_NODE + 1, 1 << 20])
def test_node_out_of_range_is_refused(node: int) -> None:
    with pytest.raises(ValueError):
        SnowflakeIds(node=node)


def test_layout_constants() -> None:
    assert NODE_BITS + SEQUENCE_BITS == 22
    assert MAX_NODE == 1023


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fresh_leases(database_url: str) -> Iterator[Engine]:
    """The database's lease table, emptied before and after (other tests hold leases too)."""
    engine = create_database_engine(database_url, pool_size=1)
    saved: list[Any] = []
    with engine.begin() as conn:
        saved = [dict(r._mapping) for r in conn.execute(sa.select(node_leases))]
        conn.execute(node_leases.delete())
    try:
        yield engine
    finally:
        with engine.begin() as conn:
            conn.execute(node_leases.delete())
            if saved:
                conn.execute(node_leases.insert(), saved)
        engine.dispose()


def test_live_leases_get_distinct_nodes_and_release_frees_one(fresh_leases: Engine) -> None:
    clock = Clock()
    leases = [NodeLease(fresh_leases, clock=clock) for _ in range(3)]
    assert [lease.node for lease in leases] == [0, 1, 2]
    leases[1].release()
    assert NodeLease(fresh_leases, clock=clock).node == 1


def test_a_stale_lease_is_taken_over_and_its_holder_moves_on(fresh_leases: Engine) -> None:
    clock = Clock()
    stalled = NodeLease(fresh_leases, ttl=300, clock=clock)
    assert stalled.node == 0
    clock.now += 299
    assert NodeLease(fresh_leases, ttl=300, clock=clock).node == 1  # still live
    clock.now += 2
    taker = NodeLease(fresh_leases, ttl=300, clock=clock)
    assert taker.node == 0  # stale: nobody renewed it for over 300 s
    moved: list[int] = []
    stalled._on_change = moved.append
    assert stalled.renew() is False
    assert stalled.node not in (0, 1) and moved == [stalled.node]
    assert stalled.held()
    assert taker.renew() is True


def test_a_lease_not_renewed_in_time_stops_ids_before_anyone_may_take_its_node(
    fresh_leases: Engine,
) -> None:
    clock = Clock()
    lease = NodeLease(fresh_leases, ttl=300, clock=clock, monotonic=clock)
    ids = SnowflakeIds(lease.node, held=lease.held)
    ids.next_id()
    clock.now += 239  # renewals failed (database away, a stall): still safely ours
    ids.next_id()
    clock.now += 2  # 241 s: a fifth of the TTL before a stale lease may be taken
    with pytest.raises(ConvhubError) as refused:
        ids.next_id()
    assert refused.value.code is ErrorCode.UNAVAILABLE
    assert NodeLease(fresh_leases, ttl=300, clock=clock).node != lease.node  # not yet takeable
    assert lease.renew() is True  # nobody took it: renewing makes it ours again
    ids.next_id()


def test_a_lost_lease_with_no_free_node_refuses_ids_until_one_is_held(
    fresh_leases: Engine,
) -> None:
    clock = Clock()
    lease = NodeLease(fresh_leases, ttl=300, clock=clock, monotonic=clock)
    ids = SnowflakeIds(lease.node, held=lease.held)
    with fresh_leases.begin() as conn:  # another process took it, and every other node is busy
        conn.execute(node_leases.delete())
        conn.execute(
            node_leases.insert(),
            [{"node": n, "owner": "x", "heartbeat": int(clock.now)} for n in range(MAX_NODE + 1)],
        )
    assert lease.renew() is False
    assert not lease.held()
    with pytest.raises(ConvhubError) as refused:
        ids.next_id()
    assert refused.value.code is ErrorCode.UNAVAILABLE
    with fresh_leases.begin() as conn:
        conn.execute(node_leases.delete().where(node_leases.c.node == 7))
    assert lease.renew() is False  # not renewed, but a new node is held now
    assert lease.held() and lease.node == 7
    ids.rebind(lease.node)
    ids.next_id()


def test_all_nodes_held_is_a_clear_error(fresh_leases: Engine) -> None:
    clock = Clock()
    with fresh_leases.begin() as conn:
        conn.execute(
            node_leases.insert(),
            [{"node": n, "owner": "x", "heartbeat": int(clock.now)} for n in range(MAX_NODE + 1)],
        )
    with pytest.raises(NodesExhausted):
        NodeLease(fresh_leases, clock=clock)
