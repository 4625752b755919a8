"""Engines for the two supported storage engines, set up for durability."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import greenlet  # noqa: F401 - before SQLAlchemy's asyncio, whose own check raises ImportError
from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from convhub.errors import ConfigError

DEFAULT_DATABASE_URL = "sqlite:///convhub.db"
_FORMS = "use sqlite:///PATH (a file) or postgresql://USER@HOST:PORT/DATABASE"
_PASSWORD = re.compile(r"(://[^:/@]*):[^@]*@")


def mask_url(text: str) -> str:
    """``text`` fit to show: the password, if any, replaced by ``***``."""
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD.sub(r"\1:***@", text)


def parse_database_url(text: str, *, source: str = "the database URL") -> URL:
    """``text`` as a URL convhub can store in, or a ``ConfigError`` naming ``source`` (the flag
    or variable it came from)."""
    try:
        url = make_url(text)
    except ArgumentError:
        raise ConfigError(f"{source} {mask_url(text)!r} is not a database URL: {_FORMS}") from None
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if url.database in (None, "", ":memory:"):
            raise ConfigError(
                f"{source} {mask_url(text)!r} is an in-memory SQLite database, which ends with "
                "each process: name a file, sqlite:///PATH"
            )
        return url
    if backend == "postgresql" and driver in ("", "psycopg", "psycopg2"):
        # psycopg 3 is what convhub installs; postgresql:// and +psycopg2 URLs get it.
        return url.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"{source} {mask_url(text)!r}: convhub does not store in {url.drivername}; {_FORMS}"
    )


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (relative to the working directory), or None for PostgreSQL."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database is None:
        return None
    return Path(parsed.database)


def create_database_engine(url: str, *, pool_size: int = 16) -> Engine:
    """An engine for ``url``. PostgreSQL URLs without a driver get psycopg 3."""
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            hide_parameters=True,
        )
        _make_sqlite_durable(engine)
        return engine
    return create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        connect_args=postgres_connect_args(parsed),
        hide_parameters=True,  # errors are logged; their parameters may be credentials
    )


def create_loop_engine(engine: Engine) -> AsyncEngine:
    """The asyncio twin of a PostgreSQL ``engine`` (psycopg's async connection), without a pool:
    its user keeps the connections it opens."""
    return create_async_engine(
        engine.url,
        poolclass=NullPool,
        connect_args=postgres_connect_args(engine.url),
        hide_parameters=True,
    )


def postgres_connect_args(url: URL) -> dict[str, Any]:
    # A PostgreSQL that does not answer a connect is down: fail in seconds, not minutes
    # (``?connect_timeout=`` in the URL overrides it).
    return {} if "connect_timeout" in url.query else {"connect_timeout": 5}


SQLITE_MMAP_BYTES = 1 << 34  # address space, not memory: pages are shared with the OS cache
SQLITE_CACHE_KIB = 32_768  # per connection
# The WAL's size in pages at which a commit checkpoints in the committing connection, the writer
# (SQLite's default: 1,000). store/checkpoint.py copies the pages off the writer; what it has not
# copied yet when the writer's checkpoint comes due, that batch waits for. Replaying the writer's
# batches of 64 renames over 10 million rows (no HTTP), their p99 was 8-9 ms at 1,000, 1.2-3.6 at
# 10,000 (README, Benchmark).
SQLITE_AUTOCHECKPOINT_PAGES = 10_000


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
        # Reads of a big file come from mapped memory, not a read() per page: with the default
        # 2 MB page cache and no mapping, BatchGet(100) over 1 million conversations spent its
        # time in system calls (426 req/s, against 1,626 over 10,000).
        cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock at the start, so two processes never deadlock on an
        # upgrade from a read lock; readers (marked convhub_readonly) stay deferred.
        if connection.get_execution_options().get("convhub_readonly"):
            # On the driver itself: through exec_driver_sql, this BEGIN was 7% of a BatchGet.
            # A deferred BEGIN takes no lock, so it has no busy error to map. A read the driver
            # began already (``driver.read_only``) goes on in its transaction.
            dbapi_connection = connection.connection.dbapi_connection
            if not dbapi_connection.in_transaction:
                dbapi_connection.execute("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
