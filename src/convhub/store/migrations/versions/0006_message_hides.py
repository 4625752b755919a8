"""One member's deletes of messages (Volcengine DeleteMessage)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_hides",
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "user_id", name="pk_message_hides"),
    )


def downgrade() -> None:
    op.drop_table("message_hides")
