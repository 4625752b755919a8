"""On PostgreSQL, the conversations' primary key carries the version: readers ask for the
versions of what they kept without visiting the table

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

from convhub.store.short_locks import with_short_lock_waits

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BUILT = "conversations_key_next"  # the new key's index, until it becomes the key


def _swap_key(include: str) -> None:
    """Build the key's new index without blocking writes, then make it the key: the swap
    itself holds the table's lock only for as long as it takes to change the catalog."""
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_BUILT}")  # an interrupted build's
        op.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {_BUILT} ON conversations (id){include}")
    # Only for as long as the catalog change takes, and in short tries (store/short_locks.py).
    with_short_lock_waits(
        op.get_bind(),
        "ALTER TABLE conversations DROP CONSTRAINT pk_conversations,"
        f" ADD CONSTRAINT pk_conversations PRIMARY KEY USING INDEX {_BUILT}",
        revision=revision,
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite's key is the rowid, in the row
        _swap_key(" INCLUDE (version)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _swap_key("")
