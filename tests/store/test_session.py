"""The session's held-back rows, on each engine: what ``held_tally`` counts of them as a batch's
units hold rows, fail and are dropped, and are written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from convhub.store.engine import create_database_engine
from convhub.store.session import Session

_INSERT = sa.text("INSERT INTO tallied (user_id, counted) VALUES (:user_id, :counted)")


def _counted(row: Mapping[str, Any]) -> str | None:
    return str(row["user_id"]) if row["counted"] else None


def _rows(*users: str, counted: bool = True) -> list[dict[str, Any]]:
    return [{"user_id": user, "counted": int(counted)} for user in users]


def test_the_tally_counts_what_is_held_and_forgets_dropped_and_written_rows(
    database_url: str,
) -> None:
    engine = create_database_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TEMPORARY TABLE tallied (user_id TEXT, counted INT)"))
            session = Session(conn)
            assert session.held_tally(_INSERT, _counted) == {}

            session.begin_unit()
            session.hold(_INSERT, _rows("a", "b"))
            session.hold(_INSERT, _rows("a", counted=False))
            assert session.held_tally(_INSERT, _counted) == {"a": 1, "b": 1}
            session.begin_unit()
            session.hold(_INSERT, _rows("a"))
            assert session.held_tally(_INSERT, _counted) == {"a": 2, "b": 1}  # only the new row

            failed = session.begin_unit()
            session.hold(_INSERT, _rows("a", "c"))
            assert session.held_tally(_INSERT, _counted) == {"a": 3, "b": 1, "c": 1}
            assert session.drop_unit(failed)  # its rows are forgotten, and so is their count
            assert session.held_tally(_INSERT, _counted) == {"a": 2, "b": 1}

            session.begin_unit()
            session.hold(_INSERT, _rows("b"))
            assert session.held_tally(_INSERT, _counted) == {"a": 2, "b": 2}
            session.flush()  # written: nothing is held any more
            assert session.held_tally(_INSERT, _counted) == {}
            stored = conn.execute(sa.text("SELECT count(*) FROM tallied")).scalar()
            assert stored == 5
            session.hold(_INSERT, _rows("c"))
            assert session.held_tally(_INSERT, _counted) == {"c": 1}
            conn.rollback()
    finally:
        engine.dispose()
