"""The first start's bootstrap: all of it or none of it, completed when an older convhub left it
half done, and taken by one of several starts at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from convhub.domain.directory import Bootstrap
from convhub.store import migrate
from convhub.store.engine import create_database_engine
from tests import admin


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    migrate.upgrade(empty_database_url)
    engine = create_database_engine(empty_database_url, pool_size=4)
    yield engine
    engine.dispose()


def _credentials(engine: Engine) -> tuple[list[object], list[object], list[object]]:
    apps = [a["app_id"] for a in admin.list_apps(engine, "default")]
    keys = [k["access_key"] for k in admin.list_keys(engine, "default")]
    tokens = [t["id"] for t in admin.list_tokens(engine, "default")]
    return apps, keys, tokens


def test_an_empty_database_gets_account_app_key_and_token(engine: Engine) -> None:
    made = admin.bootstrap_if_empty(engine)
    assert made is not None and not made.completed
    assert _credentials(engine) == ([made.app_id], [made.key.access_key], [made.token.id])
    assert admin.bootstrap_if_empty(engine) is None  # once


def test_an_account_default_alone_is_completed(engine: Engine) -> None:
    # What convhub before da195d9 left when killed after its first transaction.
    admin.create_account(engine, "default")
    made = admin.bootstrap_if_empty(engine)
    assert made is not None and made.completed and made.app_id == admin.FIRST_APP_ID
    assert _credentials(engine) == ([made.app_id], [made.key.access_key], [made.token.id])
    assert admin.bootstrap_if_empty(engine) is None


def test_a_default_account_without_a_token_gets_a_new_key_and_a_token(engine: Engine) -> None:
    admin.create_account(engine, "default")
    app_id = admin.create_app(engine, "default", name="default")
    unseen = admin.create_key(engine, "default")  # made, never shown: the start died first
    made = admin.bootstrap_if_empty(engine)
    assert made is not None and made.completed and made.app_id == app_id
    apps, keys, tokens = _credentials(engine)
    assert apps == [app_id] and tokens == [made.token.id]
    assert keys == [unseen.access_key, made.key.access_key]


def test_a_database_with_other_accounts_is_left_as_it_is(engine: Engine) -> None:
    admin.create_account(engine, "default")
    admin.create_account(engine, "someone-else")
    assert admin.bootstrap_if_empty(engine) is None
    assert _credentials(engine) == ([], [], [])


def test_concurrent_first_starts_bootstrap_once_without_an_error(engine: Engine) -> None:
    results: list[Bootstrap | BaseException | None] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        try:
            results.append(admin.bootstrap_if_empty(engine))
        except BaseException as error:
            results.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    made = [r for r in results if isinstance(r, Bootstrap)]
    assert len(results) == 4 and len(made) == 1, results
    assert results.count(None) == 3, results
    assert _credentials(engine) == ([made[0].app_id], [made[0].key.access_key], [made[0].token.id])
