"""Access keys and tokens are looked up through a cache that keeps misses too."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from convhub.domain.authentication import Authenticator
from convhub.errors import ConvhubError, ErrorCode
from convhub.store.database import GroupCommitDatabase
from convhub.store.engine import create_database_engine, is_sqlite
from tests.support import new_tenant


class Clock:
    now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingReads:
    """The real database, counting the reads that reach it."""

    def __init__(self, db: GroupCommitDatabase) -> None:
        self.db = db
        self.reads = 0

    async def read(self, work: Any) -> Any:
        self.reads += 1
        return await self.db.read(work)

    async def write(self, work: Any) -> Any:
        return await self.db.write(work)


@pytest.fixture
def counted(database_url: str) -> Iterator[CountingReads]:
    engine = create_database_engine(database_url, pool_size=2)
    db = GroupCommitDatabase(engine, read_connections=0 if is_sqlite(database_url) else 1)
    try:
        yield CountingReads(db)
    finally:
        db.close()


def test_a_flood_of_made_up_keys_costs_one_read_per_key_and_ttl(
    counted: CountingReads, database_url: str
) -> None:
    clock = Clock()
    authenticator = Authenticator(db=counted, clock=clock, ttl=5)
    tenant = new_tenant(database_url)

    async def scenario() -> None:
        for _ in range(50):
            with pytest.raises(ConvhubError) as refused:
                await authenticator.access_key("AKLTmadeup")
            assert refused.value.code is ErrorCode.UNKNOWN_ACCESS_KEY
        assert counted.reads == 1
        for _ in range(3):
            key, _account = await authenticator.access_key(tenant.access_key)
            assert key.secret_key == tenant.secret_key
        assert counted.reads == 2
        clock.now += 5.1
        with pytest.raises(ConvhubError):
            await authenticator.access_key("AKLTmadeup")
        assert counted.reads == 3

    asyncio.run(scenario())
