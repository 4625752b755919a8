"""On PostgreSQL, a change of conversations by anything but a convhub writer raises a write
clock of its own: readers that skip the versions see it

Each convhub process raises its own row of ``write_clock`` in every transaction, and marks the
transaction as its writer's (``convhub.clock``, transaction-local; see store/clock.py). A
statement that changes ``conversations`` in a transaction without that mark (a process of a
version before this one, during a rolling upgrade; an administrator's SQL) raises row -1, so
that every process's readers ask for the versions again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

from convhub.store.short_locks import with_short_lock_waits

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FOREIGN_ROW = -1


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":  # one process serves a SQLite file
        return
    op.execute(
        f"INSERT INTO write_clock (id, seq) VALUES ({FOREIGN_ROW}, 0) ON CONFLICT (id) DO NOTHING"
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION convhub_foreign_write() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN UPDATE write_clock SET seq = seq + 1 WHERE id = {FOREIGN_ROW}; RETURN NULL; END"
        " $$"
    )
    # CREATE TRIGGER waits for every open transaction on the table: short tries.
    with_short_lock_waits(
        op.get_bind(),
        "CREATE TRIGGER conversations_foreign_write"
        " AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON conversations FOR EACH STATEMENT"
        " WHEN (current_setting('convhub.clock', true) IS DISTINCT FROM 'on')"
        " EXECUTE FUNCTION convhub_foreign_write()",
        revision=revision,
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    with_short_lock_waits(
        op.get_bind(),
        "DROP TRIGGER IF EXISTS conversations_foreign_write ON conversations",
        revision=revision,
    )
    op.execute("DROP FUNCTION IF EXISTS convhub_foreign_write()")
    op.execute(f"DELETE FROM write_clock WHERE id = {FOREIGN_ROW}")
