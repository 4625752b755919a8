from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import context

from convhub.store.engine import create_database_engine
from convhub.store.tables import metadata

_LOCK = 0x636F6E7668756201  # "convhub\x01": the migrations' advisory lock
config = context.config
engine = create_database_engine(config.get_main_option("sqlalchemy.url") or "", pool_size=2)


@contextmanager
def _taking_turns() -> Iterator[None]:
    """Processes that start together on one PostgreSQL take turns: the next one reads the
    revision only once the first has finished, and finds nothing left to do.

    The lock is the session's, held across the commits of a migration's autocommit block, and
    taken by polling: a process blocked inside ``pg_advisory_lock`` would hold a snapshot that
    the first process's ``CREATE INDEX CONCURRENTLY`` waits for, a deadlock."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as lock:
        lock = lock.execution_options(isolation_level="AUTOCOMMIT")
        take = sa.text("SELECT pg_try_advisory_lock(:key)")
        while not lock.execute(take, {"key": _LOCK}).scalar():
            time.sleep(0.05)
        try:
            yield
        finally:
            lock.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK})


with _taking_turns(), engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
