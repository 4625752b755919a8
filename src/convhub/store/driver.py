"""Prebuilt statements run on the driver's own cursor.

SQLAlchemy's per-execution work (cache-key lookup, execution context, result wrapping) cost as
much as SQLite's own work on the hot statements: a few prebuilt statements per request, run
thousands of times a second. A statement marked ``fast`` is compiled once per engine kind (and,
for an INSERT or an UPDATE whose columns come from the parameters, per set of parameter names)
and then handed to the driver directly, in the same connection and transaction. Driver errors
are turned into SQLAlchemy's (``IntegrityError``, ``OperationalError`` …) and a lost connection
is invalidated, exactly as SQLAlchemy does, so that callers see no difference.

Only column types the drivers take and give as they are (integers and text) are used here, and
no IN lists (SQLAlchemy expands those at each execution): a list of values goes through
``InList``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, TypeVar

from sqlalchemy import ARRAY, ColumnElement, Connection, Executable, any_, bindparam, cast
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.crud import REQUIRED
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.util import await_only

from convhub.store.pq_pipeline import Answer, LibpqPipeline

S = TypeVar("S", bound=Executable)

_FAST: dict[int, Executable] = {}  # id -> statement (kept alive, so an id is never reused)
_DML: set[int] = set()  # the fast statements that are an INSERT, UPDATE or DELETE
# SQL, the driver's arguments from the parameters, whether it gives rows
_Compiled = tuple[str, Callable[[Mapping[str, Any]], Any], bool]
_COMPILED: dict[tuple[int, str, frozenset[str] | None], _Compiled] = {}


def fast(statement: S) -> S:
    """Mark a module-level statement to run on the driver's cursor."""
    _FAST[id(statement)] = statement
    if isinstance(statement, UpdateBase):
        _DML.add(id(statement))
    return statement


def is_fast(statement: Executable) -> bool:
    return id(statement) in _FAST


_EXPANDING: dict[int, tuple[str, int]] = {}
_SIZED: dict[tuple[int, int], Executable] = {}


def sized(statement: Executable, name: str, size: int) -> Executable:
    """``statement``, whose one IN list is ``bindparam(name, expanding=True)``, as a fast
    statement for lists of ``size`` values; run it with ``name_1`` … ``name_<size>``."""
    key = (id(statement), size)
    found = _SIZED.get(key)
    if found is None:
        found = _SIZED[key] = fast(statement.params())  # type: ignore[attr-defined]
        _EXPANDING[id(found)] = (name, size)
    return found


_KEYS: dict[tuple[str, int], tuple[str, ...]] = {}


def sized_params(name: str, values: Sequence[Any], **others: Any) -> dict[str, Any]:
    keys = _KEYS.get((name, len(values)))
    if keys is None:
        keys = _KEYS[name, len(values)] = tuple(f"{name}_{i}" for i in range(1, len(values) + 1))
    named = dict(zip(keys, values, strict=True))
    if others:
        named.update(others)
    return named


def _python_type(column: ColumnElement[Any]) -> type | None:
    try:
        found: type = column.type.python_type
    except NotImplementedError:
        return None
    return found


def integer_array(values: Iterable[int]) -> str:
    """A PostgreSQL array of integers as its text, which the server parses (cast to the array's
    type in the statement): psycopg adapts a list item by item in Python, which made 8% of
    BatchGet(100)'s time, and 220 µs of the writer's CPU to lock a batch's 64 names where the
    text takes 85."""
    return "{" + ",".join(map(str, map(int, values))) + "}"


def text_array(values: Iterable[str]) -> str:
    """``integer_array`` for strings: each element quoted, its backslashes and quotes escaped,
    so that a comma, a brace, a space or the word NULL stays part of its string."""
    return "{" + ",".join(map(_quoted, values)) + "}"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InList:
    """A fast statement with one list of values compared to ``column``.

    On PostgreSQL it is ``column = ANY(CAST(:name AS type[]))``: one statement for every length,
    which the server prepares once and psycopg parses once (psycopg leaves a query of more than
    50 parameters out of its parse cache: BatchGet(100) spent 13% of its time re-parsing its
    100 placeholders). SQLite has no arrays: there it is ``column IN (?, …)``, one statement per
    length (``sized``). ``build`` makes the statement from the comparison; ``postgresql``, if
    given, is the statement there instead (taking the list as an array named ``name``)."""

    __slots__ = ("_as_text", "_expanding", "_name", "_postgresql")

    def __init__(
        self,
        build: Callable[[ColumnElement[bool]], Executable],
        column: ColumnElement[Any],
        name: str,
        *,
        postgresql: Executable | None = None,
    ) -> None:
        self._name = name
        kind = _python_type(column)
        self._as_text = integer_array if kind is int else text_array if kind is str else None
        array = cast(bindparam(name), ARRAY(column.type))
        self._postgresql = fast(build(column == any_(array)) if postgresql is None else postgresql)
        self._expanding = build(column.in_(bindparam(name, expanding=True)))

    def bind(
        self, dialect: str, values: Sequence[Any], **others: Any
    ) -> tuple[Executable, dict[str, Any]]:
        """The statement for ``values`` on ``dialect``, and its parameters."""
        if dialect == "postgresql":
            array = values if self._as_text is None else self._as_text(values)
            return self._postgresql, {**others, self._name: array}
        statement = sized(self._expanding, self._name, len(values))
        return statement, sized_params(self._name, values, **others)


class Rows:
    """What callers use of a SQLAlchemy result, for rows already fetched."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        return self._rows

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise ValueError(f"expected one row, got {len(self._rows)}")
        return self._rows[0][0]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


def _gives_rows(statement: Executable) -> bool:
    if isinstance(statement, UpdateBase):
        return bool(statement._returning)
    return True  # a SELECT, or text (SELECT pg_advisory_xact_lock …)


def _compiled(conn: Connection, statement: Executable, keys: Iterable[str]) -> _Compiled:
    dml = id(statement) in _DML
    names = frozenset(keys) if dml else None
    cache_key = (id(statement), conn.dialect.name, names)
    found = _COMPILED.get(cache_key)
    if found is not None:
        return found
    if id(statement) in _EXPANDING:
        # An IN list of one length: rendered with as many placeholders, once per length.
        name, size = _EXPANDING[id(statement)]
        # Rendering the list needs a value for every parameter: the caller's stay placeholders.
        values = dict(statement.compile(dialect=conn.dialect).params)  # type: ignore[attr-defined]
        literals = {key: value for key, value in values.items() if value is not None}
        values[name] = list(range(size))
        done = statement.params(values).compile(  # type: ignore[attr-defined]
            dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
        )
    else:
        done = statement.compile(  # type: ignore[attr-defined]
            dialect=conn.dialect, column_keys=sorted(names) if names is not None else None
        )
        if "POSTCOMPILE" in str(done):
            raise ValueError("a fast statement cannot hold an IN list: write it with or_()")
        # An INSERT compiled for a set of columns marks each as required, a placeholder that
        # the caller's values always replace: only true values are the statement's own.
        literals = {key: value for key, value in done.params.items() if value is not REQUIRED}
    found = _COMPILED[cache_key] = (
        str(done), _arguments(done.positiontup, literals), _gives_rows(statement)
    )  # fmt: skip
    return found


def _arguments(
    order: Sequence[str] | None, literals: dict[str, Any]
) -> Callable[[Mapping[str, Any]], Any]:
    """What makes the driver's arguments from a statement's parameters: a tuple in ``order``
    (a positional driver, SQLite), else the parameters themselves; ``literals`` (values the
    statement holds) under them."""
    take: Callable[[Mapping[str, Any]], Any]
    if order is None:
        take = _same
    elif len(order) == 1:
        only = order[0]
        take = lambda values: (values[only],)  # noqa: E731
    elif order:
        take = itemgetter(*order)
    else:
        take = lambda values: ()  # noqa: E731
    if not literals:
        return take
    return lambda params: take({**literals, **params})


def _same(params: Mapping[str, Any]) -> Mapping[str, Any]:
    return params


@contextlib.contextmanager
def _driver_errors(conn: Connection, sql: str, cursor: Any = None) -> Iterator[None]:
    """Driver errors as SQLAlchemy's, a lost connection invalidated, as SQLAlchemy does."""
    try:
        yield
    except conn.dialect.loaded_dbapi.Error as error:
        raise _translated(conn, sql, cursor, error) from error


def _translated(conn: Connection, sql: str, cursor: Any, error: Any) -> Exception:
    """``error``, the driver's, as SQLAlchemy's; the connection invalidated if it was lost.
    (The hot paths below catch the driver's errors themselves: a generator-based context manager
    costs a microsecond a statement.)"""
    dbapi_connection = conn.connection.dbapi_connection
    lost = conn.dialect.is_disconnect(error, dbapi_connection, cursor)
    if lost:
        conn.invalidate(error)
    translated: Exception = DBAPIError.instance(
        sql,
        None,
        error,
        conn.dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=conn.dialect,
    )
    return translated


def _cursor(conn: Connection) -> Any:
    """A new cursor of the connection's driver, in its transaction."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    return dbapi_connection.cursor()


def execute(
    conn: Connection,
    statement: Executable,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    *,
    pipeline: Any = None,
    answer: bool = True,
) -> Rows:
    """Run ``statement``. With a psycopg ``pipeline`` (the connection in pipeline mode), a
    statement that needs no ``answer`` is sent without waiting for it; one that does waits for
    its own result and, in the same round trip, for every statement sent before it."""
    many = not isinstance(params, Mapping) and params is not None
    rows_in: Sequence[Mapping[str, Any]] = params if many else [params or {}]  # type: ignore[assignment, list-item]
    compiled = _compiled(conn, statement, rows_in[0])
    sql, arguments, gives_rows = compiled
    if conn.dialect.is_async and not many:
        with _driver_errors(conn, sql):
            rows, rowcount = await_only(
                _awaited(conn.connection.driver_connection, compiled, rows_in[0])
            )
        return Rows(rows, rowcount)
    if many and conn.dialect.name == "postgresql":
        rows_form = _multi_row(sql)
        if rows_form is not None and rows_form.fits(rows_in):
            try:
                arrays = rows_form.arrays(list(map(arguments, rows_in)))
            except _NotArrayable:
                pass  # one statement a row, below, as the driver sends each value alone
            else:
                return _many_rows(conn, rows_form, arrays, pipeline, answer)
    if pipeline is not None:
        return _pipelined(conn, pipeline, sql, list(map(arguments, rows_in)), gives_rows, answer)
    cursor = _cursor(conn)
    try:
        if many:
            cursor.executemany(sql, list(map(arguments, rows_in)))
            return Rows([], cursor.rowcount)
        cursor.execute(sql, arguments(rows_in[0]))
        # What the statement is says whether it gives rows: psycopg's cursor.description
        # builds a Column per column on every call (16 µs for a row of 24).
        fetched = cursor.fetchall() if gives_rows else []
        return Rows(fetched, cursor.rowcount)
    except conn.dialect.loaded_dbapi.Error as error:
        raise _translated(conn, sql, cursor, error) from error
    finally:
        forget(conn, cursor)


# An INSERT of one row of placeholders, as SQLAlchemy renders it for psycopg.
_ONE_ROW = re.compile(
    r"(INSERT INTO [^()]+\([^()]+\)) VALUES \(((?:[^()%]|%\(\w+\)s)+)\)", re.ASCII
)
# An UPDATE of one row by its key: ``SET a=%(a)s::T, …, b=<no placeholder> WHERE t.k = %(k)s::T``.
_ONE_UPDATE = re.compile(r"UPDATE (\w+) SET (.+) WHERE (\w+\.\w+) = (%\((\w+)\)s::\w+)", re.ASCII)
_SET_ITEM = re.compile(r"(\w+)=(%\((\w+)\)s::\w+)", re.ASCII)
# A row's values: each a placeholder with its cast, and nothing else.
_CAST_VALUE = re.compile(r"%\((\w+)\)s::(\w+)", re.ASCII)
_INTEGER_TYPES = frozenset({"BIGINT", "INTEGER", "SMALLINT"})
_TEXT_TYPES = frozenset({"VARCHAR", "TEXT"})
_INTEGERS = frozenset({int})
_INTEGERS_OR_NONE = frozenset({int, type(None)})
_TEXTS = frozenset({str})
_TEXTS_OR_NONE = frozenset({str, type(None)})


class _NotArrayable(Exception):
    """A value of a type a column's array text is not made for (the driver would adapt it)."""


def _integer_column(values: tuple[Any, ...]) -> str:
    """An integer column's values as a PostgreSQL array's text, NULL for None."""
    kinds = set(map(type, values))
    if kinds <= _INTEGERS:
        return "{" + ",".join(map(str, values)) + "}"
    if kinds <= _INTEGERS_OR_NONE:
        return "{" + ",".join(["NULL" if v is None else str(v) for v in values]) + "}"
    raise _NotArrayable


def _text_column(values: tuple[Any, ...]) -> str:
    """A text column's values as a PostgreSQL array's text (``text_array``), NULL for None."""
    kinds = set(map(type, values))
    if kinds <= _TEXTS:
        joined = "".join(values)
        if "\\" in joined or '"' in joined:
            return text_array(values)
        return '{"' + '","'.join(values) + '"}'  # nothing to escape: quoted as they are
    if kinds <= _TEXTS_OR_NONE:
        return "{" + ",".join(["NULL" if v is None else _quoted(v) for v in values]) + "}"
    raise _NotArrayable


class _MultiRow:
    """One statement for a statement of one row, and any number of rows: each column's values
    go as one array (its text, ``$1::BIGINT[]``), which ``unnest`` turns back into rows. psycopg's
    ``executemany`` sends one statement a row, each with its pass through psycopg's Python and a
    poll of the socket; a statement of many rows in placeholders (``VALUES ($1, …), ($26, …)``)
    had psycopg adapt every value in Python, 25 a conversation, and was cut into statements of
    at most 128 rows (64, 32 …, each prepared apart). Now a batch's rows of one form go in one
    statement, prepared once, of one parameter a column. An INSERT's rows become
    ``INSERT … SELECT * FROM unnest(…)``; an UPDATE by key
    ``UPDATE … FROM unnest(…) AS v(…) WHERE key = v.key`` (``_multi_update``). Only a row whose
    every value is a placeholder cast to an integer or a text type qualifies (what SQLAlchemy
    renders for psycopg, for the columns the store has)."""

    __slots__ = ("_columns", "_key", "sql", "take")

    def __init__(self, head: str, row: str, tail: str = "", *, key: str | None = None) -> None:
        self._key = key  # an UPDATE's: the parameter its rows are found by
        values = [_CAST_VALUE.fullmatch(value) for value in row.split(", ")]
        if any(value is None for value in values):
            raise ValueError(f"not a row of cast placeholders: {row}")
        names = [value.group(1) for value in values if value is not None]
        types = [value.group(2) for value in values if value is not None]
        if not all(kind in _INTEGER_TYPES or kind in _TEXT_TYPES for kind in types):
            raise ValueError(f"a column neither an integer nor text: {row}")
        self._columns = tuple(
            _integer_column if kind in _INTEGER_TYPES else _text_column for kind in types
        )
        arrays = ", ".join(f"${i}::{kind}[]" for i, kind in enumerate(types, start=1))
        self.sql = f"{head}unnest({arrays}){tail}"
        self.take: Callable[[Mapping[str, Any]], tuple[Any, ...]] = (
            itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
        )

    def fits(self, rows: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the rows can go in one statement: an UPDATE's keys must differ, since
        PostgreSQL updates a row at most once in a statement (``executemany`` updates it again
        for each of its rows, in turn)."""
        key = self._key
        return key is None or len({row[key] for row in rows}) == len(rows)

    def arrays(self, rows: list[Any]) -> list[str]:
        """The statement's parameters for ``rows`` (each the driver's arguments for the
        statement of one row: a mapping); ``_NotArrayable`` if a value's type does not fit."""
        columns = zip(*map(self.take, rows), strict=True)
        return [encode(values) for encode, values in zip(self._columns, columns, strict=True)]


_MULTI_ROW: dict[str, _MultiRow | None] = {}


def _multi_row(sql: str) -> _MultiRow | None:
    if sql in _MULTI_ROW:
        return _MULTI_ROW[sql]
    matched = _ONE_ROW.fullmatch(sql)
    try:
        form = (
            _multi_update(sql)
            if matched is None
            else _MultiRow(f"{matched.group(1)} SELECT * FROM ", matched.group(2))
        )
    except ValueError:
        form = None
    _MULTI_ROW[sql] = form
    return form


def _multi_update(sql: str) -> _MultiRow | None:
    """``UPDATE t SET a=v.a, … FROM unnest(…) AS v(a, …, k) WHERE t.k = v.k`` for an UPDATE of
    one row by its key whose every placeholder is a whole value with its cast (what SQLAlchemy
    renders for psycopg), for rows whose keys differ (``fits``)."""
    matched = _ONE_UPDATE.fullmatch(sql)
    if matched is None:
        return None
    table, assignments, target, key_value, key = matched.groups()
    sets, values, names = [], [], []
    for item in re.split(r", (?=\w+=)", assignments):
        one = _SET_ITEM.fullmatch(item)
        if one is not None:
            column, value, name = one.groups()
            sets.append(f'{column}=v."{name}"')
            values.append(value)
            names.append(name)
        elif "%(" in item:
            return None  # a placeholder inside an expression: not a value of the row
        else:
            sets.append(item)  # no placeholder: the same for every row (version + 1)
    values.append(key_value)
    names.append(key)
    columns = ", ".join(f'"{name}"' for name in names)
    head = f"UPDATE {table} SET {', '.join(sets)} FROM "
    tail = f' AS v({columns}) WHERE {target} = v."{key}"'
    return _MultiRow(head, ", ".join(values), tail, key=key)


def _many_rows(
    conn: Connection,
    form: _MultiRow,
    arrays: list[str],
    pipeline: LibpqPipeline | None,
    answer: bool,
) -> Rows:
    if pipeline is not None:
        return _pipelined(conn, pipeline, form.sql, [arrays], False, answer)
    import psycopg  # only PostgreSQL comes here

    dbapi_connection: Any = conn.connection.dbapi_connection
    cursor = psycopg.RawCursor(dbapi_connection)
    try:
        cursor.execute(form.sql, arrays, prepare=True)
        return Rows([], cursor.rowcount)
    except conn.dialect.loaded_dbapi.Error as error:
        raise _translated(conn, form.sql, cursor, error) from error
    finally:
        forget(conn, cursor)


def _pipelined(
    conn: Connection,
    pipeline: LibpqPipeline,
    sql: str,
    rows: list[Any],
    gives_rows: bool,
    answer: bool,
) -> Rows:
    """``sql`` for each of ``rows`` (its parameters) queued in ``pipeline``: without waiting
    unless the caller wants an ``answer``, then its rows (or how many rows it changed) after the
    round trip that answers everything queued before it too."""
    try:
        answers = [pipeline.execute(sql, params) for params in rows]
        if not answer:
            return Rows([], -1)
        if gives_rows and len(answers) == 1:
            return Rows(answers[0].rows(), answers[0].rowcount)
        pipeline.sync()
        return Rows([], sum(a.rowcount for a in answers))
    except conn.dialect.loaded_dbapi.Error as error:
        raise _translated(conn, sql, None, error) from error


async def _awaited(
    driver: Any, compiled: _Compiled, params: Mapping[str, Any]
) -> tuple[list[Any], int]:
    """A statement on psycopg's async connection itself, in the greenlet's one wait: SQLAlchemy's
    adapter around it would add a lock and build ``cursor.description`` on every call."""
    sql, arguments, gives_rows = compiled
    # One cursor a connection, used again by each of its statements (a connection runs one at a
    # time): a new cursor copies the connection's adapters and sets up its state each time.
    cursor = driver.__dict__.get("_convhub_cursor")
    if cursor is None or cursor.closed:
        cursor = driver._convhub_cursor = driver.cursor()
    await cursor.execute(sql, arguments(params))
    rows = list(await cursor.fetchall()) if gives_rows else []
    return rows, cursor.rowcount


def send(
    conn: Connection, pipeline: LibpqPipeline, statement: Executable, params: Mapping[str, Any]
) -> Answer:
    """Queue a statement that gives rows in ``pipeline`` without waiting for them: its answer,
    for ``receive`` later (in the round trip that answers what follows)."""
    sql, arguments, _gives_rows = _compiled(conn, statement, params)
    with _driver_errors(conn, sql):
        return pipeline.execute(sql, arguments(params))


def receive(conn: Connection, answer: Answer) -> Rows:
    """The rows of a statement ``send`` queued, waiting for them if they have not come yet."""
    with _driver_errors(conn, "(pipelined)"):
        return Rows(answer.rows(), answer.rowcount)


@contextlib.contextmanager
def read_only(conn: Connection) -> Iterator[None]:
    """A read-only transaction on a SQLite connection's driver itself: SQLAlchemy's ``begin``
    and commit, with the events they fire, cost 7 µs a read against 1.6 this way. A statement
    run through SQLAlchemy inside it (one not prebuilt) begins SQLAlchemy's own transaction,
    whose BEGIN the engine then skips (store/engine.py); it is ended here too."""
    raw = conn.connection.dbapi_connection
    assert raw is not None
    try:
        raw.execute("BEGIN")
    except conn.dialect.loaded_dbapi.Error as error:
        raise _translated(conn, "BEGIN", None, error) from error
    try:
        yield
    except BaseException:
        if conn.in_transaction():
            conn.rollback()
        elif raw.in_transaction:
            with contextlib.suppress(conn.dialect.loaded_dbapi.Error):
                raw.execute("ROLLBACK")
        raise
    if conn.in_transaction():
        conn.commit()
    else:
        try:
            raw.execute("COMMIT")
        except conn.dialect.loaded_dbapi.Error as error:
            raise _translated(conn, "COMMIT", None, error) from error


def forget(conn: Connection, cursor: Any) -> None:
    """Close ``cursor``, whatever is left unread on it."""
    # Not contextlib.suppress: it would look the error class up (and build a context manager)
    # on every call; an except clause only when something is raised.
    try:  # noqa: SIM105
        cursor.close()
    except conn.dialect.loaded_dbapi.Error:  # the connection may be gone
        pass


def enter_pipeline(conn: Connection) -> LibpqPipeline:
    """The connection's libpq connection in pipeline mode (``store/pq_pipeline.py``); leave it
    with ``leave_pipeline``."""
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    with _driver_errors(conn, "(pipeline)"):
        return LibpqPipeline(dbapi_connection)  # type: ignore[arg-type]


def send_queued(conn: Connection, pipeline: LibpqPipeline) -> None:
    """Send what ``pipeline`` holds without waiting for it (see ``LibpqPipeline.send``)."""
    with _driver_errors(conn, "(pipeline)"):
        pipeline.send()


def leave_pipeline(
    conn: Connection, pipeline: LibpqPipeline, failed: BaseException | None = None
) -> None:
    """Leave pipeline mode: waits for every statement still unanswered and raises the first error
    among them, unless the caller is already failing (``failed``)."""
    if failed is not None:
        pipeline.leave(failed)
        return
    with _driver_errors(conn, "(pipeline)"):
        pipeline.leave()
