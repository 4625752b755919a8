"""Group life: member details, join order, per-member settings, live-group marks, activity

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("last_join_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("activity_key", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.drop_index("ix_participants_user", table_name="participants")
    with op.batch_alter_table("participants") as batch:
        batch.add_column(sa.Column("app_id", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("in_group_limit", sa.SmallInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("nick_name", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("level", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("ext", sa.Text(), nullable=False, server_default="{}"))
        batch.add_column(
            sa.Column("block_time", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("join_seq", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("history_floor", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE participants SET"
        " app_id = (SELECT c.app_id FROM conversations AS c"
        "  WHERE c.id = participants.conversation_id),"
        " in_group_limit = (SELECT CASE WHEN c.type = 2 AND c.connector_id = '' THEN 1 ELSE 0 END"
        "  FROM conversations AS c WHERE c.id = participants.conversation_id),"
        " join_seq = (SELECT count(*) FROM participants AS p"
        "  WHERE p.conversation_id = participants.conversation_id"
        "  AND (p.create_time < participants.create_time"
        "   OR (p.create_time = participants.create_time AND p.user_id <= participants.user_id)))"
    )
    op.execute(
        "UPDATE conversations SET activity_key = id,"
        " last_join_seq = (SELECT count(*) FROM participants AS p"
        "  WHERE p.conversation_id = conversations.id),"
        " member_count = (SELECT count(*) FROM participants AS p"
        "  WHERE p.conversation_id = conversations.id AND p.status = 0)"
    )
    op.create_index(
        "ix_participants_user",
        "participants",
        ["app_id", "user_id", "status", "in_group_limit", "conversation_id"],
    )
    op.create_index(
        "ix_participants_join", "participants", ["conversation_id", "status", "join_seq"]
    )
    op.create_table(
        "conversation_settings",
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("is_mute", sa.SmallInteger(), nullable=False),
        sa.Column("stick_top_time", sa.BigInteger(), nullable=False),
        sa.Column("favorite_time", sa.BigInteger(), nullable=False),
        sa.Column("ext", sa.Text(), nullable=False),
        sa.Column("read_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", name="pk_conversation_settings"),
    )
    op.create_table(
        "conversation_marks",
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("mark_type", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "mark_type", name="pk_conversation_marks"),
    )


def downgrade() -> None:
    op.drop_table("conversation_marks")
    op.drop_table("conversation_settings")
    op.drop_index("ix_participants_join", table_name="participants")
    op.drop_index("ix_participants_user", table_name="participants")
    with op.batch_alter_table("participants") as batch:
        for name in (
            "history_floor", "join_seq", "block_time", "ext", "level", "nick_name",
            "in_group_limit", "app_id",
        ):  # fmt: skip
            batch.drop_column(name)
    op.create_index("ix_participants_user", "participants", ["user_id", "conversation_id"])
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("activity_key")
        batch.drop_column("last_join_seq")
