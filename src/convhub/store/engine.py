"""Engines for the two supported storage engines, set up for durability."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///convhub.db"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_database_engine(url: str, *, pool_size: int = 16) -> Engine:
    """An engine for ``url``. PostgreSQL URLs without a driver get psycopg 3."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ValueError("convhub needs a SQLite file, not an in-memory database")
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            hide_parameters=True,
        )
        _make_sqlite_durable(engine)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() in ("psycopg2", ""):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed,
            pool_size=pool_size,
            max_overflow=0,
            pool_pre_ping=True,
            # A PostgreSQL that does not answer a connect is down: fail in seconds, not minutes
            # (``?connect_timeout=`` in the URL overrides it).
            connect_args={} if "connect_timeout" in parsed.query else {"connect_timeout": 5},
            hide_parameters=True,  # errors are logged; their parameters may be credentials
        )
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def _make_sqlite_durable(engine: Engine) -> None:
    # pysqlite's own transaction handling cannot express BEGIN IMMEDIATE or savepoints, so it is
    # switched off and SQLAlchemy's begin emits the statement itself (the SQLAlchemy recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: every commit is synced to disk before the caller hears about it.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock at the start, so two processes never deadlock on an
        # upgrade from a read lock; readers (marked convhub_readonly) stay deferred.
        if connection.get_execution_options().get("convhub_readonly"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
