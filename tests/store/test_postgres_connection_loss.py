"""A PostgreSQL that drops convhub's connections (a restart, a failover, an admin's kill) must not
wedge the server: the writer and the readers reconnect, and no answered write is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from convhub.config import Settings, parse_rate_limits
from convhub.store.tables import conversations
from tests.postgres import terminate_backends
from tests.support import (
    NO_LIMITS,
    LiveServer,
    VolcClient,
    new_tenant,
    required_postgres,
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with required_postgres() as url:
        yield url


def test_server_recovers_after_its_connections_are_killed(postgres_url: str) -> None:
    tenant = new_tenant(postgres_url)
    settings = Settings(
        database_url=postgres_url,
        rate_limits=parse_rate_limits(NO_LIMITS),
        access_cache_seconds=0,  # every request reads the directory: the read path is exercised
    )
    body = {
        "AppId": tenant.app_id,
        "OwnerUserId": 1,
        "ConversationCoreInfo": {"ConversationType": 2},
    }
    with LiveServer(settings) as live:
        client = VolcClient(live, tenant)
        try:
            made = [client.ok("CreateConversation", body)["ConversationShortId"]]
            for _ in range(3):
                assert terminate_backends(postgres_url) >= 1
                statuses = []
                for _ in range(3):  # at most a transient error per killed connection
                    response = client.call("CreateConversation", body)
                    statuses.append(response.status_code)
                    if response.status_code == 200:
                        made.append(response.json()["Result"]["ConversationShortId"])
                assert statuses[-1] == 200, statuses
                found = client.ok(
                    "BatchGetConversations", {"AppId": tenant.app_id, "ConversationShortId": made}
                )
                assert [c["ConversationShortId"] for c in found["ConversationCoreInfos"]] == made
        finally:
            client.close()
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(sa.func.count())
                .select_from(conversations)
                .where(conversations.c.app_id == tenant.app_id)
            ).scalar_one()
    finally:
        engine.dispose()
    assert stored == len(made)  # every answered create is there, nothing else


def test_the_id_lease_renews_while_reads_and_the_writer_hold_every_pooled_connection() -> None:
    """On PostgreSQL each reader and the writer keep a connection the pool size allows for
    good; a lease renewal that waited for one would let the lease lapse under load."""
    with required_postgres() as url:
        settings = Settings(database_url=url, rate_limits=parse_rate_limits(NO_LIMITS), pool_size=2)
        with LiveServer(settings) as live:
            tenant = new_tenant(url)
            client = VolcClient(live, tenant)
            try:
                body = {"AppId": tenant.app_id, "ConversationShortId": [1]}
                client.ok("BatchGetConversations", body)  # the one reader takes its connection
                created = client.ok(
                    "CreateConversation",
                    {
                        "AppId": tenant.app_id,
                        "OwnerUserId": 1,
                        "ConversationCoreInfo": {"ConversationType": 2},
                    },
                )  # the writer holds the other
                assert created["ConversationShortId"] > 0
                started = time.monotonic()
                assert live.app.lease.renew() is True
                assert time.monotonic() - started < 5
            finally:
                client.close()
