"""Prebuilt statements run on the driver's own cursor.

SQLAlchemy's per-execution work (cache-key lookup, execution context, result wrapping) cost as
much as SQLite's own work on the hot statements: a few prebuilt statements per request, run
thousands of times a second. A statement marked ``fast`` is compiled once per engine kind (and,
for an INSERT or an UPDATE whose columns come from the parameters, per set of parameter names)
and then handed to the driver directly, in the same connection and transaction. Driver errors
are turned into SQLAlchemy's (``IntegrityError``, ``OperationalError`` …) and a lost connection
is invalidated, exactly as SQLAlchemy does, so that callers see no difference.

Only column types the drivers take and give as they are (integers and text) are used here, and
no IN lists (SQLAlchemy expands those at each execution).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import UpdateBase

S = TypeVar("S", bound=Executable)

_FAST: dict[int, Executable] = {}  # id -> statement (kept alive, so an id is never reused)
_Compiled = tuple[str, Sequence[str] | None, dict[str, Any]]
_COMPILED: dict[tuple[int, str, frozenset[str] | None], _Compiled] = {}


def fast(statement: S) -> S:
    """Mark a module-level statement to run on the driver's cursor."""
    _FAST[id(statement)] = statement
    return statement


def is_fast(statement: Executable) -> bool:
    return id(statement) in _FAST


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


def _compiled(conn: Connection, statement: Executable, keys: Sequence[str]) -> _Compiled:
    dml = isinstance(statement, UpdateBase)
    names = frozenset(keys) if dml else None
    cache_key = (id(statement), conn.dialect.name, names)
    found = _COMPILED.get(cache_key)
    if found is None:
        done = statement.compile(  # type: ignore[attr-defined]
            dialect=conn.dialect, column_keys=sorted(keys) if dml else None
        )
        if "POSTCOMPILE" in str(done):
            raise ValueError("a fast statement cannot hold an IN list: write it with or_()")
        found = (str(done), done.positiontup, dict(done.params))
        _COMPILED[cache_key] = found
    return found


def _arguments(compiled: _Compiled, params: Mapping[str, Any]) -> Any:
    _sql, order, literals = compiled
    values = {**literals, **params} if literals else params
    return [values[name] for name in order] if order is not None else values


def execute(
    conn: Connection,
    statement: Executable,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
) -> Rows:
    many = not isinstance(params, Mapping) and params is not None
    rows_in: Sequence[Mapping[str, Any]] = params if many else [params or {}]  # type: ignore[assignment, list-item]
    compiled = _compiled(conn, statement, list(rows_in[0]))
    sql = compiled[0]
    dbapi_connection = conn.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    try:
        if many:
            cursor.executemany(sql, [_arguments(compiled, row) for row in rows_in])
            return Rows([], cursor.rowcount)
        cursor.execute(sql, _arguments(compiled, rows_in[0]))
        fetched = list(cursor.fetchall()) if cursor.description is not None else []
        return Rows(fetched, cursor.rowcount)
    except conn.dialect.loaded_dbapi.Error as error:
        lost = conn.dialect.is_disconnect(error, dbapi_connection, cursor)
        if lost:
            conn.invalidate(error)
        raise DBAPIError.instance(
            sql,
            None,
            error,
            conn.dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=conn.dialect,
        ) from error
    finally:
        with contextlib.suppress(conn.dialect.loaded_dbapi.Error):  # the connection may be gone
            cursor.close()
