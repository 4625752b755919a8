from __future__ import annotations

import os
import subprocess
import sys

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
