"""On PostgreSQL, the conversations' IDs with their versions in one index: a reader asks for
the versions of what it kept without visiting the table

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_NAME = "ix_conversations_versions"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite finds a row by its rowid with the version in it
    # Built without blocking writes; one left invalid by an interrupted build goes first.
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_NAME}")
        op.create_index(
            _NAME,
            "conversations",
            ["id"],
            postgresql_include=["version"],
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.drop_index(_NAME, table_name="conversations", postgresql_concurrently=True)
