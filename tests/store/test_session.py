"""The session's held-back rows, on each engine: what ``held_tally`` counts of them as a batch's
units hold rows, fail and are dropped, and are written; and how a flush writes them."""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import psycopg as postgresql_psycopg

from convhub.domain.models import Message, MessageStatus, Participant, Role
from convhub.store import driver
from convhub.store.driver import fast
from convhub.store.engine import create_database_engine
from convhub.store.repositories import conversations as conversation_rows
from convhub.store.repositories import messages as message_rows
from convhub.store.repositories import participants as participant_rows
from convhub.store.session import Session
from tests.support import connection, group_of

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
# What an array's text could mangle: its separators, quotes, escapes, the word NULL, nothing.
_ODD_NAMES = ["a,b", 'q"uote', "back\\slash", "{brace}", " sp ", "NULL", "", "ü€", '\\"']
_HELD_ROWS = sa.Table(
    "held_rows",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("n", sa.Integer),
)
_INSERT_ROW = fast(sa.insert(_HELD_ROWS))


def _count_statements(event: str, table: str, log: str) -> str:
    """PostgreSQL: each ``event`` (INSERT, UPDATE) statement on ``table``, with the rows it
    wrote, noted in the temporary table ``log`` (``seq``, ``rows``)."""
    return f"""
CREATE TEMPORARY TABLE {log} (seq SERIAL, rows INT);
CREATE FUNCTION pg_temp.count_{log}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {log} (rows) SELECT count(*) FROM new_rows;
    RETURN NULL;
END $$;
CREATE TRIGGER counted AFTER {event} ON {table} REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.count_{log}();
"""


_COUNT_INSERTS = _count_statements("INSERT", "held_rows", "inserts")


def test_a_flush_writes_every_held_row_exactly_in_one_statement(database_url: str) -> None:
    # Values a placeholder's rewriting or an array's text could mangle: NULLs, text that looks
    # like placeholders, separators, quotes, escapes, the word NULL, and int64s past a double's
    # exact range (and negative ones).
    odd = [None, "%s $1 %(n)s", *_ODD_NAMES]
    rows = [
        {"id": (-1) ** i * (2**53 + 1 + i), "name": odd[i % len(odd)], "n": i} for i in range(300)
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
            more = [{"id": i, "name": "more", "n": -i} for i in range(1, 4)]
            assert session.write(_INSERT_ROW, more).rowcount == 3  # outside the pipeline
            stored = conn.execute(sa.text("SELECT id, name, n FROM held_rows ORDER BY id"))
            expected = sorted([*more, *rows], key=itemgetter("id"))
            assert [dict(row._mapping) for row in stored] == expected
            if session.dialect == "postgresql":
                # One statement of 300 rows, then one of 3: not one a row.
                inserted = conn.execute(sa.text("SELECT rows FROM inserts ORDER BY seq")).scalars()
                assert list(inserted) == [300, 3]
            conn.rollback()
    finally:
        engine.dispose()


def test_text_with_a_nul_is_stored_whole_or_refused_never_cut_short(database_url: str) -> None:
    # libpq reads a text parameter up to its first NUL: the pipeline would have stored "ab" for
    # one row and failed on an array's text for several. PostgreSQL refuses it as psycopg does;
    # SQLite keeps it whole. (The domain refuses NUL before it reaches the store.)
    for rows in ([{"id": 1, "name": "ab\x00cd", "n": 1}],
                 [{"id": i, "name": f"{i}\x00", "n": i} for i in (1, 2)]):  # fmt: skip
        with connection(database_url) as conn:
            conn.execute(sa.text("CREATE TEMPORARY TABLE held_rows (id BIGINT, name TEXT, n INT)"))
            conn.commit()
            session = Session(conn)
            try:
                with session.pipelined():
                    session.begin_unit()
                    session.hold(_INSERT_ROW, rows)
                    session.flush()
            except sa.exc.DataError as error:
                assert conn.dialect.name == "postgresql"
                assert "NUL" in str(error)
                conn.rollback()
            stored = conn.execute(sa.text("SELECT id, name FROM held_rows ORDER BY id"))
            whole = [(row["id"], row["name"]) for row in rows]
            assert [tuple(r) for r in stored] == ([] if session.dialect == "postgresql" else whole)
            conn.rollback()


def test_an_insert_sends_the_rows_as_given_and_a_statement_its_own_values(
    database_url: str,
) -> None:
    # An INSERT compiled for its rows' columns has no values of its own: each row goes to the
    # driver as it is (a tuple in the statement's order, or the row itself), with no dictionary
    # made a row to merge placeholders under it. A value the statement holds is still sent.
    with connection(database_url) as conn:
        conn.execute(sa.text("CREATE TEMPORARY TABLE held_rows (id BIGINT, name TEXT, n INT)"))
        _sql, arguments, _gives_rows = driver._compiled(conn, _INSERT_ROW, ("id", "name", "n"))
        row = {"id": 1, "name": None, "n": 2}
        if conn.dialect.name == "sqlite":
            assert isinstance(arguments, itemgetter)
            assert arguments(row) == (1, None, 2)
        else:
            assert arguments is driver._same
        fixed_n = fast(sa.insert(_HELD_ROWS).values(n=7))
        Session(conn).write(fixed_n, [{"id": 3, "name": "x"}, {"id": 4, "name": "y"}])
        stored = conn.execute(sa.text("SELECT id, name, n FROM held_rows ORDER BY id"))
        assert [tuple(r) for r in stored] == [(3, "x", 7), (4, "y", 7)]
        conn.rollback()


def test_rows_with_a_value_of_another_type_are_written_one_by_one_as_the_driver_adapts_it(
    database_url: str,
) -> None:
    # A bool is no int to an array's text (its text would be "True"): such rows go as the
    # driver sends each value alone, and are stored all the same.
    with connection(database_url) as conn:
        conn.execute(sa.text("CREATE TEMPORARY TABLE held_rows (id BIGINT, name TEXT, n INT)"))
        rows = [{"id": 1, "name": "a", "n": True}, {"id": 2, "name": "b", "n": 5}]
        Session(conn).write(_INSERT_ROW, rows)
        stored = conn.execute(sa.text("SELECT id, name, n FROM held_rows ORDER BY id"))
        assert [tuple(r) for r in stored] == [(1, "a", 1), (2, "b", 5)]
        conn.rollback()


def test_the_stores_held_rows_go_to_postgresql_as_one_array_a_column() -> None:
    # The rows a batch of creates, renames and messages holds back qualify for one statement
    # of arrays: every value a cast placeholder of an integer or text type, every dumped value
    # an int, a str or None. A column of another kind would send them one statement a row.
    dialect = postgresql_psycopg.dialect()  # type: ignore[no-untyped-call]
    group = group_of(2**62 + 1, 7)
    member = Participant(
        conversation_id=group.id, user="u", role=Role.OWNER, operator="u", create_time=1,
        in_group_limit=True, ext={"k": 'v "quoted"'},
    )  # fmt: skip
    message = Message(
        id=2**62 + 2, conversation_id=group.id, index=1, sender="u", msg_type=1, content="hi",
        ext={}, status=MessageStatus.NORMAL, create_time=1, update_time=1,
    )  # fmt: skip
    renamed = conversation_rows.MAPPER.dump(group, ("name", "modify_time"))
    renamed["b_id"] = group.id
    held = [
        (
            conversation_rows._INSERT,
            {**conversation_rows.MAPPER.dump(group), "idempotency_key": None},
        ),
        (participant_rows._INSERT, participant_rows.MAPPER.dump(member)),
        (message_rows._INSERT, message_rows.MAPPER.dump(message)),
        (conversation_rows._update(renamed), renamed),
    ]
    for statement, row in held:
        compiled = statement.compile(dialect=dialect, column_keys=sorted(row))
        form = driver._multi_row(str(compiled))
        assert form is not None, str(compiled)
        arrays = form.arrays([row, row])
        assert len(arrays) == len(row)
        assert all(isinstance(a, str) and a.startswith("{") for a in arrays)
        assert "unnest(" in form.sql


_NAMED = sa.Table("named", _metadata, sa.Column("id", sa.BigInteger), sa.Column("name", sa.Text))
_BY_NAMES = driver.InList(sa.select(_NAMED.c.name, _NAMED.c.id).where, _NAMED.c.name, "names")
_BY_IDS = driver.InList(sa.select(_NAMED.c.id, _NAMED.c.name).where, _NAMED.c.id, "ids")


def test_a_list_of_strings_or_integers_finds_exactly_its_rows(database_url: str) -> None:
    with connection(database_url) as conn:
        conn.execute(sa.text("CREATE TEMPORARY TABLE named (id BIGINT, name TEXT)"))
        rows = [{"id": 2**62 + i, "name": name} for i, name in enumerate(_ODD_NAMES)]
        conn.execute(sa.text("INSERT INTO named (id, name) VALUES (:id, :name)"), rows)
        conn.execute(sa.text("INSERT INTO named (id, name) VALUES (-1, 'other')"))
        session = Session(conn)
        by_names = _BY_NAMES.bind(session.dialect, _ODD_NAMES)
        assert dict(session.read(*by_names)) == {r["name"]: r["id"] for r in rows}
        ids = [r["id"] for r in rows]
        by_ids = _BY_IDS.bind(session.dialect, ids)
        assert sorted(session.read(*by_ids)) == sorted((r["id"], r["name"]) for r in rows)
        if session.dialect == "postgresql":
            # Sent as the array's text, which PostgreSQL parses, not as a list psycopg adapts
            # item by item in Python.
            assert isinstance(by_names[1]["names"], str) and isinstance(by_ids[1]["ids"], str)
        conn.rollback()


_CHANGED_ROWS = sa.Table(
    "changed_rows",
    _metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("n", sa.Integer),
    sa.Column("version", sa.BigInteger),
)
_INSERT_CHANGED = fast(sa.insert(_CHANGED_ROWS))
_BY_ID = _CHANGED_ROWS.c.id == sa.bindparam("b_id")
_BUMPED = _CHANGED_ROWS.c.version + sa.literal_column("1")
# One statement object for each set of names changed (``Session.hold_change``).
_RENAME = fast(sa.update(_CHANGED_ROWS).where(_BY_ID).values(version=_BUMPED))
_RENUMBER = fast(sa.update(_CHANGED_ROWS).where(_BY_ID).values(version=_BUMPED))
_SELECT_NAME = fast(sa.select(_CHANGED_ROWS.c.name).where(_CHANGED_ROWS.c.id == sa.bindparam("id")))

_COUNT_UPDATES = _count_statements("UPDATE", "changed_rows", "updates")
_CREATE_CHANGED_ROWS = sa.text(
    "CREATE TEMPORARY TABLE changed_rows (id BIGINT PRIMARY KEY, name TEXT, n INT, version BIGINT)"
)


def _stored(conn: sa.Connection) -> dict[int, tuple[Any, ...]]:
    rows = conn.execute(sa.text("SELECT id, name, n, version FROM changed_rows"))
    return {row.id: tuple(row)[1:] for row in rows}


def test_held_changes_go_out_after_the_held_inserts_in_one_statement_a_form(
    database_url: str,
) -> None:
    """A batch's changes of rows by key are held back like its inserts: each form's rows go in
    one statement (on PostgreSQL; one ``executemany`` on SQLite), after the inserts, so that a
    row inserted and changed in the same batch ends changed. A second change of a held row
    flushes first, and what reads around held rows sees the changes."""
    with connection(database_url) as conn:
        conn.execute(_CREATE_CHANGED_ROWS)
        stored = {2**53 + 1 + i: (f"old {i}", i, 0) for i in range(300)}
        conn.execute(
            _INSERT_CHANGED,
            [{"id": k, "name": v[0], "n": v[1], "version": 0} for k, v in stored.items()],
        )
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(_COUNT_UPDATES))
        session = Session(conn)
        ids = list(stored)
        with session.pipelined():
            session.begin_unit()
            # A row inserted in the batch, then changed, after the change was held.
            fresh = {"id": 7, "name": "fresh", "n": 0, "version": 0}
            session.hold_change(_RENAME, {"b_id": 7, "name": "changed"}, 7)
            session.hold(_INSERT_CHANGED, [fresh])
            assert session.wrote  # a held change cannot be dropped without a rollback
            for i, key in enumerate(ids[:260]):
                # Values a placeholder's rewriting could mangle: NULLs, text that looks like
                # placeholders.
                name = None if i % 7 == 0 else f"%s $1 %(n)s ü{i}"
                session.hold_change(_RENAME, {"b_id": key, "name": name}, key)
                stored[key] = (name, i, 1)
            for i, key in enumerate(ids[260:], start=260):
                session.hold_change(_RENUMBER, {"b_id": key, "n": -i}, key)
                stored[key] = (f"old {i}", -i, 1)
            assert _stored(conn)[ids[0]] == ("old 0", 0, 0)  # nothing sent yet
            # A second change of a held row: what was held goes first.
            session.hold_change(_RENAME, {"b_id": ids[1], "name": "again"}, ids[1])
            stored[ids[1]] = ("again", 1, 2)
            # Read around the held rows: the held change is written first.
            params = {"id": ids[1]}
            assert session.scalar_around_held(_SELECT_NAME, params) == "again"
            session.hold_change(_RENAME, {"b_id": ids[2], "name": "last"}, ids[2])
            stored[ids[2]] = ("last", 2, 2)
            session.flush()
        stored[7] = ("changed", 0, 1)
        assert _stored(conn) == stored
        if session.dialect == "postgresql":
            # 261 renames in one statement, then 40 renumbers in another; then the second
            # change of one row, then the last.
            changed = conn.execute(sa.text("SELECT rows FROM updates ORDER BY seq")).scalars()
            assert list(changed) == [261, 40, 1, 1]
        conn.rollback()


def test_rows_of_one_update_with_a_key_twice_are_each_applied_in_turn(database_url: str) -> None:
    """PostgreSQL updates a row once in a statement: rows that change one key twice go one by
    one, as ``executemany`` sends them, and both changes count."""
    with connection(database_url) as conn:
        conn.execute(_CREATE_CHANGED_ROWS)
        conn.execute(_INSERT_CHANGED, [{"id": 1, "name": "a", "n": 0, "version": 0}])
        session = Session(conn)
        rows = [{"b_id": 1, "name": "b"}, {"b_id": 1, "name": "c"}]
        session.change(_RENAME, rows)
        assert _stored(conn) == {1: ("c", 0, 2)}
        conn.rollback()
