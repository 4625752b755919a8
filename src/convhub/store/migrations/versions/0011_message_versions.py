"""A version per message row, raised by every update: readers keep messages by version

convhub's own updates raise it in their statement. A trigger raises it for an update that does
not (a process of an older version during a rolling upgrade, an administrator's SQL), so that
no update leaves a kept message in use after the row changed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from convhub.store.short_locks import with_short_lock_waits

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_SQLITE_TRIGGER = (
    "CREATE TRIGGER messages_version AFTER UPDATE ON messages FOR EACH ROW"
    " WHEN NEW.version = OLD.version"
    " BEGIN UPDATE messages SET version = OLD.version + 1 WHERE id = NEW.id; END"
)


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"))
    if op.get_bind().dialect.name != "postgresql":
        op.execute(_SQLITE_TRIGGER)
        return
    op.execute(
        "CREATE OR REPLACE FUNCTION convhub_message_version() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN NEW.version := OLD.version + 1; RETURN NEW; END $$"
    )
    # CREATE TRIGGER waits for every open transaction on the table: short tries.
    with_short_lock_waits(
        op.get_bind(),
        "CREATE TRIGGER messages_version BEFORE UPDATE ON messages FOR EACH ROW"
        " WHEN (NEW.version = OLD.version) EXECUTE FUNCTION convhub_message_version()",
        revision=revision,
        table="messages",
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with_short_lock_waits(
            op.get_bind(),
            "DROP TRIGGER IF EXISTS messages_version ON messages",
            revision=revision,
            table="messages",
        )
        op.execute("DROP FUNCTION IF EXISTS convhub_message_version()")
    else:
        op.execute("DROP TRIGGER IF EXISTS messages_version")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("version")
