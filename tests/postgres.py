"""Scratch PostgreSQL databases, for the tests and the benchmarks alike (no pytest here)."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

POSTGRES_ADMIN_URL = os.environ.get(
    "CONVHUB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class PostgresMissing(RuntimeError):
    pass


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """The URL of a new empty database named ``<prefix>_<random>``, dropped afterwards."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        admin.dispose()
        raise PostgresMissing(
            f"PostgreSQL is required at {POSTGRES_ADMIN_URL} and is not reachable: {error}. "
            "Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
            "or set CONVHUB_TEST_ENGINES=sqlite to run the SQLite half only."
        ) from error
    url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# The sessions of one database (``:name``), but the one asking.
_SESSIONS = "FROM pg_stat_activity WHERE datname = :name AND pid <> pg_backend_pid()"


@contextmanager
def _admin() -> Iterator[sa.Connection]:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            yield conn
    finally:
        admin.dispose()


def sessions(url: str, *, running: str = "") -> int:
    """How many sessions ``url``'s database has; with ``running``, how many are running a
    statement that holds that text."""
    where = " AND state = 'active' AND strpos(query, :running) > 0" if running else ""
    found = sa.text(f"SELECT count(*) {_SESSIONS}{where}")
    with _admin() as conn:
        name = sa.engine.make_url(url).database
        return int(conn.execute(found, {"name": name, "running": running}).scalar_one())


def terminate_backends(url: str) -> int:
    """Kill every session of the database and wait until they are gone; how many there were."""
    pids = sa.text(f"SELECT pid {_SESSIONS}")
    name = {"name": sa.engine.make_url(url).database}
    with _admin() as conn:
        victims = set(conn.execute(pids, name).scalars())
        for pid in victims:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 10
        while victims & set(conn.execute(pids, name).scalars()):
            assert time.monotonic() < deadline, "sessions survived pg_terminate_backend"
            time.sleep(0.02)
        return len(victims)
