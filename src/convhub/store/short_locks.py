"""DDL that waits for a table's lock in short tries (PostgreSQL migrations).

While a statement waits for a table's lock, every query of that table queues behind it: a
transaction left open elsewhere would stall the service for as long as it stays open. So the
statement waits at most ``LOCK_WAIT`` a try, under a savepoint, and tries again ``PAUSE`` seconds
later (the queued queries go through meanwhile), up to ``TRIES`` times; then the upgrade stops
with the cause, and can be run again.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy import Connection

LOCK_WAIT = "100ms"
TRIES = 100
PAUSE = 0.2  # seconds between tries
_LOCK_NOT_AVAILABLE = "55P03"


def with_short_lock_waits(
    bind: Connection, statement: str, *, revision: str, table: str = "conversations"
) -> None:
    for _ in range(TRIES):
        try:
            with bind.begin_nested():
                bind.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
                bind.exec_driver_sql(statement)
            bind.exec_driver_sql("SET LOCAL lock_timeout TO DEFAULT")
            return
        except sa.exc.OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            time.sleep(PAUSE)
    raise RuntimeError(
        f"{revision} could not take the lock of table {table} in {TRIES} tries of"
        f" {LOCK_WAIT}: a transaction that stays open holds it (see pg_stat_activity);"
        " run the upgrade again once it ends"
    )
