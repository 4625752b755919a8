"""One core message model for both dialects: index in conversation, MsgType, status, visibility

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Existing (Coze) messages get their index in creation order, times move from seconds to
milliseconds, ``meta_data`` becomes ``ext`` and ``deleted`` becomes status 2 (deleted for all).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TEXT, _CUSTOM = 10001, 10012


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("last_message_index", sa.BigInteger(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("meta_data", new_column_name="ext", existing_type=sa.Text())
        batch.alter_column("deleted", new_column_name="status", existing_type=sa.SmallInteger())
        for column in (
            sa.Column("message_index", sa.BigInteger(), nullable=False, server_default="0"),
            sa.Column("msg_type", sa.Integer(), nullable=False, server_default=str(_TEXT)),
            sa.Column("client_msg_id", sa.String(128), nullable=True),
            sa.Column("mentioned_users", sa.Text(), nullable=False, server_default="[]"),
            sa.Column("visible_users", sa.Text(), nullable=False, server_default="[]"),
            sa.Column("invisible_users", sa.Text(), nullable=False, server_default="[]"),
            sa.Column("ref_message_id", sa.BigInteger(), nullable=True),
            sa.Column("ref_hint", sa.Text(), nullable=False, server_default=""),
            sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0"),
        ):
            batch.add_column(column)
    op.execute(
        "UPDATE messages SET"
        " message_index = (SELECT count(*) FROM messages AS m"
        "  WHERE m.conversation_id = messages.conversation_id AND m.id <= messages.id),"
        " status = CASE WHEN status = 1 THEN 2 ELSE 0 END,"
        f" msg_type = CASE WHEN content_type = 'object_string' THEN {_CUSTOM} ELSE {_TEXT} END,"
        " create_time = create_time * 1000,"
        " update_time = update_time * 1000"
    )
    # A dissolved conversation no longer answers for its idempotency key: the pair (or the
    # IdempotentId) gets a new conversation.
    op.execute("UPDATE conversations SET idempotency_key = NULL WHERE status = 1")
    op.execute(
        "UPDATE conversations SET last_message_index = (SELECT count(*) FROM messages"
        " WHERE messages.conversation_id = conversations.id)"
    )
    with op.batch_alter_table("messages") as batch:
        for name in (
            "message_index", "msg_type", "mentioned_users", "visible_users", "invisible_users",
            "ref_hint", "priority",
        ):  # fmt: skip
            batch.alter_column(name, server_default=None)
        batch.create_unique_constraint("uq_messages_index", ["conversation_id", "message_index"])
        batch.create_unique_constraint(
            "uq_messages_client_msg_id", ["conversation_id", "client_msg_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_constraint("uq_messages_client_msg_id", type_="unique")
        batch.drop_constraint("uq_messages_index", type_="unique")
        for name in (
            "priority", "ref_hint", "ref_message_id", "invisible_users", "visible_users",
            "mentioned_users", "client_msg_id", "msg_type", "message_index",
        ):  # fmt: skip
            batch.drop_column(name)
    op.execute(
        "UPDATE messages SET status = CASE WHEN status = 0 THEN 0 ELSE 1 END,"
        " create_time = create_time / 1000, update_time = update_time / 1000"
    )
    with op.batch_alter_table("messages") as batch:
        batch.alter_column("status", new_column_name="deleted", existing_type=sa.SmallInteger())
        batch.alter_column("ext", new_column_name="meta_data", existing_type=sa.Text())
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("last_message_index")
