"""The session's held-back rows, on each engine: what ``held_tally`` counts of them as a batch's
units hold rows, fail and are dropped, and are written; and how a flush writes them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from convhub.store.driver import chunks, fast
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


_metadata = sa.MetaData()
_HELD_ROWS = sa.Table(
    "held_rows",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("n", sa.Integer),
)
_INSERT_ROW = fast(sa.insert(_HELD_ROWS))


# Each INSERT statement into held_rows, with the rows it inserted (PostgreSQL).
_COUNT_INSERTS = """
CREATE TEMPORARY TABLE inserts (seq SERIAL, rows INT);
CREATE FUNCTION pg_temp.count_inserts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inserts (rows) SELECT count(*) FROM new_rows;
    RETURN NULL;
END $$;
CREATE TRIGGER counted AFTER INSERT ON held_rows REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.count_inserts();
"""


def test_chunks_are_powers_of_two_that_add_up_to_the_rows() -> None:
    assert chunks(0) == []
    assert chunks(1) == [1]
    assert chunks(37) == [32, 4, 1]
    assert chunks(300) == [128, 128, 32, 8, 4]
    for count in range(1, 600):
        sizes = chunks(count)
        assert sum(sizes) == count
        assert all(size & (size - 1) == 0 and size <= 128 for size in sizes)
        assert sizes == sorted(sizes, reverse=True)


def test_a_flush_writes_every_held_row_exactly_in_few_statements(database_url: str) -> None:
    # Values a placeholder's rewriting could mangle: NULLs, text that looks like placeholders,
    # and int64s past a double's exact range.
    rows = [
        {"id": 2**53 + 1 + i, "name": None if i % 7 == 0 else f"%s $1 %(n)s ü{i}", "n": i}
        for i in range(300)
    ]
    engine = create_database_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TEMPORARY TABLE held_rows (id BIGINT, name TEXT, n INT)"))
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text(_COUNT_INSERTS))
            session = Session(conn)
            with session.pipelined():
                session.begin_unit()
                session.hold(_INSERT_ROW, rows[:1])
                session.hold(_INSERT_ROW, rows[1:])
                session.flush()
            more = [{"id": -i, "name": "more", "n": -i} for i in range(1, 4)]
            assert session.write(_INSERT_ROW, more).rowcount == 3  # outside the pipeline
            stored = conn.execute(sa.text("SELECT id, name, n FROM held_rows ORDER BY id"))
            assert [dict(row._mapping) for row in stored] == more[::-1] + rows
            if session.dialect == "postgresql":
                # Statements of 128, 128, 32, 8 and 4 rows, then of 2 and 1: not one a row.
                inserted = conn.execute(sa.text("SELECT rows FROM inserts ORDER BY seq")).scalars()
                assert list(inserted) == [128, 128, 32, 8, 4, 2, 1]
            conn.rollback()
    finally:
        engine.dispose()
