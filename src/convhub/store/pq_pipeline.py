"""The writer's pipeline on PostgreSQL, through libpq's own calls (``psycopg.pq``).

psycopg's pipeline sends each statement as it is executed: a write to the socket (which wakes
PostgreSQL's backend) and a poll for every statement, each through psycopg's Python generators,
and a round trip of its own for the ``BEGIN`` it adds before the first. A transaction of the
writer's shape cost the client 270 to 1,300 µs of CPU for 1 to 16 statements that way, 115 to
215 µs through this pipeline and psycopg's commit (``python -m benchmarks.pgclient``). Here the
statements of a batch are queued in libpq's buffer, each
prepared once per connection, and sent in one write when something needs an answer (a sync):
one round trip answers them all, ``BEGIN`` included.

Only what the writer's fast statements send goes this way: parameters that are integers, text
(without NUL, which libpq would cut a text parameter at) or NULL, sent as text (the statements
cast them). Rows come back as psycopg's would (its ``Transformer`` loads them), errors as
psycopg's exceptions (``psycopg.errors``), so the driver turns them into SQLAlchemy's as before.
The psycopg connection underneath is left as psycopg expects it: out of pipeline mode, in the
transaction (or in its failed state), which its ``commit`` or ``rollback`` then ends; or, if it
could not leave pipeline mode, closed.
"""

from __future__ import annotations

import contextlib
import re
import select
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg import errors, pq
from psycopg.adapt import Transformer

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%", re.ASCII)
# a statement's text as psycopg takes it -> libpq's text, and the names in the order of $1, $2 …
_CONVERTED: dict[str, tuple[bytes, tuple[str, ...]]] = {}
# each connection's prepared statements: text -> name
_PREPARED: weakref.WeakKeyDictionary[Any, dict[bytes, bytes]] = weakref.WeakKeyDictionary()
_ANSWERED = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


def _converted(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """psycopg's ``%(name)s`` placeholders as libpq's ``$n`` (a name used twice is one
    parameter), ``%%`` as ``%``."""
    found = _CONVERTED.get(sql)
    if found is None:
        names: dict[str, int] = {}

        def numbered(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "%"
            return f"${names.setdefault(name, len(names) + 1)}"

        found = _CONVERTED[sql] = (_PLACEHOLDER.sub(numbered, sql).encode(), tuple(names))
    return found


def _dumped(value: Any, encoding: str) -> bytes | None:
    kind = type(value)
    if kind is str:
        # libpq reads a text parameter up to its first NUL: refused, as psycopg refuses it,
        # where it would have been cut short without a word
        if "\x00" in value:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return value.encode(encoding)  # type: ignore[no-any-return]
    if kind is int:
        return str(value).encode()
    if value is None:
        return None
    raise TypeError(f"the writer's pipeline sends integers, text and NULL, not {kind.__name__}")


def _wait(socket: int, event: int) -> None:
    """Wait until ``socket`` is ready for ``event`` (or failed). poll, not select(), which
    refuses descriptors from 1,024 on: a server with a thousand clients connected passes that,
    and a connection it opens then to PostgreSQL gets one."""
    waiting = select.poll()
    waiting.register(socket, event)
    waiting.poll()


class Answer:
    """What a statement sent in the pipeline answers, once a sync has brought it."""

    __slots__ = ("error", "pipeline", "result")

    def __init__(self, pipeline: LibpqPipeline) -> None:
        self.pipeline = pipeline
        self.result: Any = None  # its PGresult
        self.error: psycopg.Error | None = None

    @property
    def done(self) -> bool:
        return self.result is not None or self.error is not None

    def rows(self) -> list[tuple[Any, ...]]:
        """Its rows, waiting for them (a sync) if they have not come yet."""
        if not self.done:
            self.pipeline.sync()
        if self.error is not None:
            raise self.error
        return self.pipeline.load(self.result)

    @property
    def rowcount(self) -> int:
        if self.result is None:
            return -1
        counted = self.result.command_tuples
        return -1 if counted is None else int(counted)

    def close(self) -> None:
        """Nothing to close (a cursor would be): a later sync reads its answer all the same."""


class LibpqPipeline:
    """A psycopg connection's libpq connection in pipeline mode, for one batch's statements."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        if (
            connection.autocommit
            or connection.isolation_level is not None
            or connection.read_only is not None
            or connection.deferrable is not None
        ):
            raise psycopg.ProgrammingError("the writer's pipeline begins plain transactions only")
        self._pgconn = connection.pgconn
        self._encoding = connection.info.encoding
        self._transformer = Transformer(connection)
        self._prepared = _PREPARED.setdefault(connection, {})
        # in the order of their answers: the statement's (None: a command's), and for a
        # statement prepared on the way, its text and name
        self._expected: deque[tuple[Answer | None, tuple[bytes, bytes] | None]] = deque()
        self._preparing: dict[bytes, bytes] = {}
        self._pgconn.enter_pipeline_mode()
        if self._pgconn.transaction_status == pq.TransactionStatus.IDLE:
            self._pgconn.send_query_params(b"BEGIN", None)
            self._expected.append((None, None))

    def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> Answer:
        """Queue ``sql`` (psycopg's named placeholders with a mapping, or ``$n`` with a
        sequence), prepared once per connection; nothing is sent until a sync."""
        encoding = self._encoding
        if isinstance(params, Mapping):
            query, names = _converted(sql)
            values = [_dumped(params[name], encoding) for name in names]
        else:
            query = sql.encode(encoding)
            values = [_dumped(value, encoding) for value in params]
        pgconn = self._pgconn
        name = self._prepared.get(query) or self._preparing.get(query)
        if name is None:
            name = f"convhub_{len(self._prepared) + len(self._preparing)}".encode()
            pgconn.send_prepare(name, query)
            self._preparing[query] = name
            self._expected.append((None, (query, name)))
        pgconn.send_query_prepared(name, values)
        answer = Answer(self)
        self._expected.append((answer, None))
        return answer

    def send(self) -> None:
        """Send what is queued without waiting for its answers: PostgreSQL runs it meanwhile
        (a batch's locks, taken while its units run)."""
        while self._pgconn.flush():
            _wait(self._pgconn.socket, select.POLLOUT)

    def sync(self) -> None:
        """Send everything queued and read every answer up to here: one round trip. The first
        error among them is raised (the statements after it are aborted, and say so)."""
        pgconn = self._pgconn
        pgconn.pipeline_sync()
        self.send()
        socket = pgconn.socket
        first: psycopg.Error | None = None
        while True:
            while pgconn.is_busy():
                _wait(socket, select.POLLIN)
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:  # the end of one statement's answer
                continue
            status = result.status
            if status == pq.ExecStatus.PIPELINE_SYNC:
                break
            answer, prepared = self._expected.popleft()
            if prepared is not None:
                query, name = prepared
                del self._preparing[query]
            if status in _ANSWERED:
                if prepared is not None:
                    self._prepared[query] = name
                if answer is not None:
                    answer.result = result
                continue
            error: psycopg.Error = (
                errors.error_from_result(result, encoding=self._encoding)
                if status == pq.ExecStatus.FATAL_ERROR
                else errors.PipelineAborted("pipeline aborted")
            )
            if answer is not None:
                answer.error = error
            if first is None:
                first = error
        if first is not None:
            raise first

    def load(self, result: Any) -> list[tuple[Any, ...]]:
        if not result.ntuples:
            return []
        transformer = self._transformer
        transformer.set_pgresult(result)
        return transformer.load_rows(0, result.ntuples, tuple)

    def leave(self, failed: BaseException | None = None) -> None:
        """Read what is still unanswered (raising its first error, unless the caller is failing
        already) and leave pipeline mode."""
        try:
            if failed is None:
                if self._expected:
                    self.sync()
            elif self._expected and self._pgconn.status == pq.ConnStatus.OK:
                with contextlib.suppress(psycopg.Error):  # the caller's failure is the one to raise
                    self.sync()
        finally:
            self._exit()

    def _exit(self) -> None:
        """Leave pipeline mode. A connection that cannot (a failure other than PostgreSQL's left
        answers unread) is closed: psycopg would refuse every later command on it in a mode it
        does not know, where a closed connection is a lost one, which the writer opens again."""
        pgconn = self._pgconn
        with contextlib.suppress(psycopg.Error):
            pgconn.exit_pipeline_mode()
        if pgconn.pipeline_status != pq.PipelineStatus.OFF:
            pgconn.finish()
