"""accounts, apps, keys, conversations, participants, id nodes

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "id_nodes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_id_nodes"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("name", name="uq_accounts_name"),
    )
    op.create_table(
        "apps",
        sa.Column("app_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_apps_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("app_id", name="pk_apps"),
    )
    op.create_index("ix_apps_account_id", "apps", ["account_id"])
    op.create_table(
        "access_keys",
        sa.Column("access_key", sa.String(64), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("secret_key", sa.String(128), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name="fk_access_keys_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("access_key", name="pk_access_keys"),
    )
    op.create_index("ix_access_keys_account_id", "access_keys", ["account_id"])
    op.create_table(
        "conversations",
        # INTEGER on SQLite: the rowid itself rather than a second index beside it.
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("inbox_type", sa.Integer(), nullable=False),
        sa.Column("type", sa.SmallInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(320), nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("avatar_url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("notice", sa.Text(), nullable=False),
        sa.Column("ext", sa.Text(), nullable=False),
        sa.Column("owner_user", sa.String(128), nullable=False),
        sa.Column("creator_user", sa.String(128), nullable=False),
        sa.Column("other_user", sa.String(128), nullable=True),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("online_count", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("modify_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_conversations"),
        sa.UniqueConstraint(
            "app_id", "inbox_type", "idempotency_key", name="uq_conversations_idempotency"
        ),
    )
    op.create_table(
        "participants",
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("role", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("operator", sa.String(128), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", name="pk_participants"),
    )
    op.create_index("ix_participants_user", "participants", ["user_id", "conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_participants_user", table_name="participants")
    op.drop_table("participants")
    op.drop_table("conversations")
    op.drop_index("ix_access_keys_account_id", table_name="access_keys")
    op.drop_table("access_keys")
    op.drop_index("ix_apps_account_id", table_name="apps")
    op.drop_table("apps")
    op.drop_table("accounts")
    op.drop_table("id_nodes")
