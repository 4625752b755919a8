"""On PostgreSQL, a change of conversations by anything but a convhub writer raises a write
clock of its own: readers that skip the versions see it

Each convhub process raises its own row of ``write_clock`` in every transaction, and marks the
transaction as its writer's (``convhub.clock``, transaction-local; see store/clock.py). A
statement that changes ``conversations`` in a transaction without that mark (a process of a
version before this one, during a rolling upgrade; an administrator's SQL) raises row -1, so
that every process's readers ask for the versions again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FOREIGN_ROW = -1
# CREATE TRIGGER takes a lock that waits for every open transaction on the table, and every
# query of it queues behind the wait: short tries, as 0009's key swap.
_LOCK_WAIT = "100ms"
_TRIES = 100
_PAUSE = 0.2


def _with_short_lock_waits(statement: str) -> None:
    bind = op.get_bind()
    for _ in range(_TRIES):
        try:
            with bind.begin_nested():
                bind.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_WAIT}'")
                bind.exec_driver_sql(statement)
            bind.exec_driver_sql("SET LOCAL lock_timeout TO DEFAULT")
            return
        except sa.exc.OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            time.sleep(_PAUSE)
    raise RuntimeError(
        f"0010 could not take the lock of table conversations in {_TRIES} tries of"
        f" {_LOCK_WAIT}: a transaction that stays open holds it (see pg_stat_activity);"
        " run the upgrade again once it ends"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":  # one process serves a SQLite file
        return
    op.execute(
        f"INSERT INTO write_clock (id, seq) VALUES ({FOREIGN_ROW}, 0) ON CONFLICT (id) DO NOTHING"
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION convhub_foreign_write() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN UPDATE write_clock SET seq = seq + 1 WHERE id = {FOREIGN_ROW}; RETURN NULL; END"
        " $$"
    )
    _with_short_lock_waits(
        "CREATE TRIGGER conversations_foreign_write"
        " AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON conversations FOR EACH STATEMENT"
        " WHEN (current_setting('convhub.clock', true) IS DISTINCT FROM 'on')"
        " EXECUTE FUNCTION convhub_foreign_write()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _with_short_lock_waits("DROP TRIGGER IF EXISTS conversations_foreign_write ON conversations")
    op.execute("DROP FUNCTION IF EXISTS convhub_foreign_write()")
    op.execute(f"DELETE FROM write_clock WHERE id = {FOREIGN_ROW}")
