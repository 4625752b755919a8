"""The in-memory counts decide as the ``limits`` library's sliding-window counter does (the rule
that Redis applies for several processes), hit for hit, on one clock."""

from __future__ import annotations

import asyncio
import random
import types

import pytest
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from convhub.ratelimit.windows import MemoryWindows


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_second_admits_its_limit_and_the_next_weighs_what_is_left_of_the_last() -> None:
    clock = _Clock(1_000.0)
    windows = MemoryWindows(clock)
    assert [windows.hit(4, 1, "Modify") for _ in range(5)] == [True] * 4 + [False]
    assert windows.hit(4, 2, "Modify") and windows.hit(4, 1, "Create")  # other keys: own counts
    clock.now = 1_001.25  # three quarters of the last second's 4 still count: 3
    assert [windows.hit(4, 1, "Modify") for _ in range(2)] == [True, False]
    clock.now = 1_001.75  # a quarter of 4, and this second's 1: 2
    assert [windows.hit(4, 1, "Modify") for _ in range(3)] == [True, True, False]
    clock.now = 1_003.1  # a second with no hits between: nothing carried over
    assert [windows.hit(4, 1, "Modify") for _ in range(5)] == [True] * 4 + [False]


@pytest.mark.parametrize("seed", range(5))
def test_every_decision_is_the_one_limits_makes(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock(1_700_000_000.0)
    # limits' memory storage reads time.time() of its module; it gets the same clock.
    import limits.aio.storage.memory as limits_memory

    monkeypatch.setattr(limits_memory, "time", types.SimpleNamespace(time=clock))
    reference = SlidingWindowCounterRateLimiter(MemoryStorage())
    windows = MemoryWindows(clock)
    rng = random.Random(seed)
    limit = rng.choice([1, 3, 10])
    item = RateLimitItemPerSecond(limit)

    async def scenario() -> tuple[list[bool], list[bool]]:
        ours: list[bool] = []
        theirs: list[bool] = []
        for _ in range(400):
            clock.now += rng.choice([0.0, 0.0, 0.01, 0.05, 0.2, 0.7, 1.3])
            account, operation = rng.choice([1, 2]), rng.choice(["Modify", "Create"])
            ours.append(windows.hit(limit, account, operation))
            theirs.append(await reference.hit(item, str(account), operation))
        return ours, theirs

    ours, theirs = asyncio.run(scenario())
    assert ours == theirs
    assert True in ours and False in ours  # both decisions were exercised
