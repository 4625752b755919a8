"""ID nodes as renewable leases instead of a serial number modulo 1024

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_leases",
        sa.Column("node", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("heartbeat", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("node", name="pk_node_leases"),
    )
    op.drop_table("id_nodes")


def downgrade() -> None:
    op.create_table(
        "id_nodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_id_nodes"),
    )
    op.drop_table("node_leases")
