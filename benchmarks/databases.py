"""A fresh, migrated database per engine, with one account, its apps, an access key and a token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from tests.postgres import scratch_database

from convhub.domain import directory
from convhub.domain.ports import UnitOfWork
from convhub.store import migrate
from convhub.store.engine import create_database_engine
from convhub.store.unit_of_work import run

ENGINES = ("sqlite", "postgresql")
TOKEN_USER = "bench"  # the user the Coze token acts as


@dataclass(frozen=True, slots=True)
class Tenant:
    app_id: int  # holds the conversations that Modify and BatchGet use
    access_key: str
    secret_key: str
    create_app_id: int  # receives the timed creates, so that the app above never grows
    token: str  # Coze bearer token of user TOKEN_USER, acting in an app of its own
    coze_app_id: int  # that app


@contextmanager
def fresh_database(engine: str, workdir: Path) -> Iterator[str]:
    """The URL of a new empty database for ``engine``, removed (or dropped) afterwards."""
    if engine == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"  # workdir is a temporary directory
    elif engine == "postgresql":
        with scratch_database("bench") as url:
            yield url
    else:
        raise ValueError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")


def prepare(url: str) -> Tenant:
    """``convhub db upgrade``, then an account, three apps, a key and a token for the benchmark
    (the Coze calls get an app of their own, so that the Volcengine rows read what they always
    read)."""
    migrate.upgrade(url)
    now = int(time.time())

    def work(uow: UnitOfWork) -> Tenant:
        directory.create_account(uow, "bench", now=now)
        app_id = directory.create_app(uow, "bench", now=now, name="bench")
        create_app_id = directory.create_app(uow, "bench", now=now, name="bench-creates")
        key = directory.create_key(uow, "bench", now=now)
        coze_app_id = directory.create_app(uow, "bench", now=now, name="bench-coze")
        token = directory.create_token(uow, "bench", user=TOKEN_USER, now=now, app_id=coze_app_id)
        return Tenant(
            app_id=app_id,
            access_key=key.access_key,
            secret_key=key.secret_key,
            create_app_id=create_app_id,
            token=token.token,
            coze_app_id=coze_app_id,
        )

    engine = create_database_engine(url, pool_size=1)
    try:
        return run(engine, work)
    finally:
        engine.dispose()


def refresh_statistics(url: str) -> None:
    """``ANALYZE`` on PostgreSQL, as autovacuum would after the set-up rows went in.

    This machine's cluster runs with autovacuum off, so without it the planner keeps the empty
    table's statistics and answers BatchGet's ``id IN (…)`` with a sequential scan: the figure
    would measure a misconfigured database, not convhub. SQLite plans by the rowid regardless.
    """
    if not url.startswith("postgresql"):
        return
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE"))
    finally:
        engine.dispose()
