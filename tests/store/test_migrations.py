from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from convhub.store import migrate
from convhub.store.engine import create_database_engine
from convhub.store.tables import metadata
from tests.support import empty_postgres


def _differences(url: str) -> list[object]:
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_tables_the_code_uses(database_url: str) -> None:
    assert _differences(database_url) == []


def test_downgrade_to_base_and_back(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    engine = sa.create_engine(url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()
    migrate.upgrade(url)
    assert _differences(url) == []


def test_processes_that_upgrade_one_postgresql_at_once_take_turns() -> None:
    """Several hosts' ``serve`` (or ``db upgrade``) starting together on an empty database: every
    one succeeds, and the schema is built once."""
    with empty_postgres() as url:
        command = [sys.executable, "-m", "convhub.cli", "db", "upgrade", "--database-url", url]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONVHUB_")}
        started = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(4)
        ]
        outputs = [p.communicate(timeout=120) for p in started]
        assert [p.returncode for p in started] == [0, 0, 0, 0], outputs
        assert _differences(url) == []


def _conversation_indexes(url: str) -> dict[str, str]:
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'conversations'"
            )
            return {name: definition for name, definition in rows}
    finally:
        engine.dispose()


def test_the_key_with_the_version_is_built_again_after_an_interrupted_build() -> None:
    """0009 builds the new key's index CONCURRENTLY before it swaps it in; a build cut short
    leaves that index behind, which the next upgrade drops and builds again."""
    with empty_postgres() as url:
        migrate.upgrade(url, "0008")
        engine = create_database_engine(url, pool_size=1)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    "CREATE UNIQUE INDEX conversations_key_next ON conversations (id)"
                )
        finally:
            engine.dispose()
        migrate.upgrade(url)
        indexes = _conversation_indexes(url)
        assert "conversations_key_next" not in indexes
        assert indexes["pk_conversations"].endswith("(id) INCLUDE (version)")
        migrate.downgrade(url, "0008")
        assert _conversation_indexes(url)["pk_conversations"].endswith("USING btree (id)")
        migrate.upgrade(url)
        assert _conversation_indexes(url)["pk_conversations"].endswith("(id) INCLUDE (version)")


def test_the_key_swap_waits_for_an_open_transaction_without_stalling_the_table() -> None:
    """The swap needs the table's strongest lock, and every query of the table queues behind a
    waiting request for it: while a transaction left open holds the table, 0009 tries in short
    waits, and readers go on between them."""
    with empty_postgres() as url:
        migrate.upgrade(url, "0008")
        engine = create_database_engine(url, pool_size=3)
        try:
            with engine.connect() as holder, engine.connect() as reader:
                holder.exec_driver_sql("SELECT count(*) FROM conversations").scalar()  # open
                reader.exec_driver_sql("SET statement_timeout = '1s'")  # stalled: an error
                reader.commit()
                upgrading = threading.Thread(target=migrate.upgrade, args=(url,))
                upgrading.start()
                slowest = 0.0
                deadline = time.monotonic() + 2.0
                while time.monotonic() < deadline:
                    started = time.monotonic()
                    reader.exec_driver_sql("SELECT count(*) FROM conversations").scalar()
                    reader.rollback()
                    slowest = max(slowest, time.monotonic() - started)
                    time.sleep(0.01)
                assert upgrading.is_alive()  # still waiting for the holder
                holder.rollback()
                upgrading.join(timeout=30)
                assert not upgrading.is_alive()
        finally:
            engine.dispose()
        assert slowest < 0.5
        assert _conversation_indexes(url)["pk_conversations"].endswith("(id) INCLUDE (version)")
