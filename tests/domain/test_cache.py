"""``TtlCache``: requests that miss together share one read, and what that read becomes (a value,
a failure) is what each of them gets; a request cancelled while it waits takes nobody's read
with it."""

from __future__ import annotations

import asyncio

import pytest

from convhub.domain.cache import TtlCache


class _Loads:
    """A load that counts its calls and finishes when the test lets it."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self) -> str:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the database went away")
        return f"value {self.calls}"


def test_requests_that_miss_together_share_one_read() -> None:
    async def scenario() -> None:
        clock = [100.0]
        cache: TtlCache[str, str] = TtlCache(clock=lambda: clock[0], ttl=5.0)
        loads = _Loads()
        waiting = [asyncio.ensure_future(cache.get("AK", loads)) for _ in range(50)]
        await asyncio.sleep(0)
        loads.release.set()
        assert await asyncio.gather(*waiting) == ["value 1"] * 50
        assert loads.calls == 1
        assert await cache.get("AK", loads) == "value 1"  # then kept for the TTL
        clock[0] += 5.0
        assert await cache.get("AK", loads) == "value 2" and loads.calls == 2

    asyncio.run(scenario())


def test_a_failed_read_fails_every_request_that_waited_for_it_and_is_not_kept() -> None:
    async def scenario() -> None:
        cache: TtlCache[str, str] = TtlCache(clock=lambda: 100.0, ttl=5.0)
        loads = _Loads()
        loads.fail = True
        waiting = [asyncio.ensure_future(cache.get("AK", loads)) for _ in range(3)]
        await asyncio.sleep(0)
        loads.release.set()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert [type(o) for o in outcomes] == [RuntimeError] * 3 and loads.calls == 1
        loads.fail = False
        assert await cache.get("AK", loads) == "value 2"  # the failure was not kept

    asyncio.run(scenario())


def test_the_request_that_started_a_read_may_be_cancelled_without_failing_the_others() -> None:
    async def scenario() -> None:
        cache: TtlCache[str, str] = TtlCache(clock=lambda: 100.0, ttl=5.0)
        loads = _Loads()
        first = asyncio.ensure_future(cache.get("AK", loads))
        await asyncio.sleep(0)
        second = asyncio.ensure_future(cache.get("AK", loads))
        await asyncio.sleep(0)
        first.cancel()
        loads.release.set()
        assert await second == "value 1" and loads.calls == 1
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(scenario())


def test_without_a_ttl_every_request_reads() -> None:
    async def scenario() -> None:
        cache: TtlCache[str, str] = TtlCache(clock=lambda: 100.0, ttl=0)
        loads = _Loads()
        loads.release.set()
        assert await asyncio.gather(*(cache.get("AK", loads) for _ in range(4))) == [
            "value 1", "value 2", "value 3", "value 4"
        ]  # fmt: skip

    asyncio.run(scenario())
