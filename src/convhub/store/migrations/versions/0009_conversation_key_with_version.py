"""On PostgreSQL, the conversations' primary key carries the version: readers ask for the
versions of what they kept without visiting the table

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BUILT = "conversations_key_next"  # the new key's index, until it becomes the key
# The swap waits for the table's lock at most this long a try: while it waits, every query of
# the table queues behind it, so a transaction left open elsewhere must not stall the service.
_LOCK_WAIT = "100ms"
_TRIES = 100
_PAUSE = 0.2  # seconds between tries, in which the queued queries go through


def _swap_key(include: str) -> None:
    """Build the key's new index without blocking writes, then make it the key: the swap
    itself holds the table's lock only for as long as it takes to change the catalog."""
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_BUILT}")  # an interrupted build's
        op.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {_BUILT} ON conversations (id){include}")
    bind = op.get_bind()
    for _ in range(_TRIES):
        try:
            with bind.begin_nested():
                bind.exec_driver_sql(f"SET LOCAL lock_timeout = '{_LOCK_WAIT}'")
                bind.exec_driver_sql(
                    "ALTER TABLE conversations DROP CONSTRAINT pk_conversations,"
                    f" ADD CONSTRAINT pk_conversations PRIMARY KEY USING INDEX {_BUILT}"
                )
            bind.exec_driver_sql("SET LOCAL lock_timeout TO DEFAULT")
            return
        except sa.exc.OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            time.sleep(_PAUSE)
    raise RuntimeError(
        f"0009 could not take the lock of table conversations in {_TRIES} tries of"
        f" {_LOCK_WAIT}: a transaction that stays open holds it (see pg_stat_activity);"
        " run the upgrade again once it ends"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite's key is the rowid, in the row
        _swap_key(" INCLUDE (version)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _swap_key("")
