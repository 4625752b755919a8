"""A write clock that SQLite's writer raises in every transaction: its readers trust what they
kept while nobody else wrote

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    clock = op.create_table(
        "write_clock",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_write_clock"),
    )
    op.bulk_insert(clock, [{"id": 1, "seq": 0}])


def downgrade() -> None:
    op.drop_table("write_clock")
