"""Scratch PostgreSQL databases, for the tests and the benchmarks alike (no pytest here)."""

from __future__ import annotations

import os
import secrets
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
