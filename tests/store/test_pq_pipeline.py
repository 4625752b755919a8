"""The writer's pipeline over libpq's calls (PostgreSQL): statements queued until a sync, answered
in order, prepared once per connection; the first error raised and the rest aborted; the
connection left as psycopg expects it, in the transaction the pipeline began."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator

import psycopg
import pytest
from benchmarks.prefill import libpq_url
from psycopg import pq

from convhub.store import pq_pipeline
from convhub.store.pq_pipeline import LibpqPipeline, _converted, _dumped
from tests.postgres import scratch_database
from tests.support import ENGINES


def test_named_placeholders_become_numbered_ones_a_name_once() -> None:
    sql = "SELECT %(a)s::BIGINT, %(b)s::VARCHAR, %(a)s::BIGINT, '100%%'"
    assert _converted(sql) == (b"SELECT $1::BIGINT, $2::VARCHAR, $1::BIGINT, '100%'", ("a", "b"))


def test_values_go_as_text_in_the_connections_encoding_and_only_integers_text_and_null_go() -> None:
    assert _dumped(-(2**63), "utf-8") == b"-9223372036854775808"
    assert _dumped('ü,"{x}"', "utf-8") == 'ü,"{x}"'.encode()
    assert _dumped("ü", "latin-1") == b"\xfc"
    assert _dumped(None, "utf-8") is None
    for other in (True, 1.5, b"x", [1]):
        with pytest.raises(TypeError):
            _dumped(other, "utf-8")
    # libpq would read the text up to the NUL and store "ab": refused as psycopg refuses it
    with pytest.raises(psycopg.DataError, match="NUL"):
        _dumped("ab\x00cd", "utf-8")


@pytest.fixture
def conn() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    if "postgresql" not in ENGINES:
        pytest.skip("CONVHUB_TEST_ENGINES leaves PostgreSQL out")
    with scratch_database("pipeline") as url, psycopg.connect(libpq_url(url)) as connection:
        connection.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)")
        connection.commit()
        yield connection


def _rows(conn: psycopg.Connection[tuple[object, ...]]) -> list[tuple[object, ...]]:
    with psycopg.connect(conn.info.dsn) as other:  # another session sees only what committed
        return other.execute("SELECT id, name FROM t ORDER BY id").fetchall()


def test_statements_wait_for_a_sync_and_are_answered_in_order(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    pipeline = LibpqPipeline(conn)
    insert = "INSERT INTO t (id, name) VALUES (%(id)s::BIGINT, %(name)s::VARCHAR)"
    first = pipeline.execute(insert, {"id": 2**62, "name": "a"})
    second = pipeline.execute(insert, {"id": 1, "name": None})
    read = pipeline.execute("SELECT id, name FROM t WHERE id >= $1::BIGINT ORDER BY id", [0])
    assert not (first.done or second.done or read.done)  # queued, not sent
    assert read.rows() == [(1, None), (2**62, "a")]  # one round trip answers all three
    assert first.done and first.rowcount == 1 and second.rowcount == 1
    pipeline.leave()
    assert conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
    assert conn.pgconn.transaction_status == pq.TransactionStatus.INTRANS  # BEGIN was its own
    assert _rows(conn) == []  # not committed yet
    conn.commit()
    assert _rows(conn) == [(1, None), (2**62, "a")]


def test_a_statement_is_prepared_once_per_connection(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    for _ in range(3):
        pipeline = LibpqPipeline(conn)
        pipeline.execute("SELECT $1::BIGINT", [7]).rows()
        pipeline.leave()
        conn.rollback()
    prepared = conn.execute(
        "SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::BIGINT'"
    ).fetchone()
    assert prepared == (1,)


def test_the_first_error_is_raised_the_rest_aborted_and_the_connection_goes_on(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    pipeline = LibpqPipeline(conn)
    before = pipeline.execute("SELECT $1::BIGINT", [1])
    failing = pipeline.execute("SELECT 1 / $1::INTEGER", [0])
    after = pipeline.execute("SELECT $1::BIGINT", [2])
    with pytest.raises(psycopg.errors.DivisionByZero):
        after.rows()
    assert before.rows() == [(1,)]
    with pytest.raises(psycopg.errors.DivisionByZero):
        failing.rows()
    with pytest.raises(psycopg.errors.PipelineAborted):
        after.rows()
    pipeline.leave(RuntimeError("the batch failed"))
    assert conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
    conn.rollback()
    assert conn.execute("SELECT 3").fetchone() == (3,)


def test_an_error_at_the_last_sync_still_leaves_pipeline_mode(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    pipeline = LibpqPipeline(conn)
    pipeline.execute("INSERT INTO t (id, name) VALUES ($1::BIGINT, $2::VARCHAR)", [1, "a"])
    pipeline.execute("INSERT INTO t (id, name) VALUES ($1::BIGINT, $2::VARCHAR)", [1, "b"])
    with pytest.raises(psycopg.errors.UniqueViolation):
        pipeline.leave()
    assert conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
    conn.rollback()  # psycopg's own ROLLBACK, out of pipeline mode
    assert _rows(conn) == []


def test_sent_statements_run_before_the_sync(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    pipeline = LibpqPipeline(conn)
    pipeline.execute("SELECT pg_advisory_xact_lock($1::BIGINT)", [42])
    pipeline.send()
    with psycopg.connect(conn.info.dsn) as other:
        for _ in range(100):  # PostgreSQL takes it while this side waits for nothing
            free = other.execute("SELECT pg_try_advisory_xact_lock(42)").fetchone()
            other.rollback()
            if free == (False,):
                break
            time.sleep(0.01)
        else:
            pytest.fail("the lock was not taken")
    pipeline.leave()
    conn.rollback()


def test_a_connection_on_a_descriptor_past_1024_is_waited_for_as_any_other(
    conn: psycopg.Connection[tuple[object, ...]],
) -> None:
    # A server with a thousand clients connected opens its connection to PostgreSQL (again,
    # after a loss) on a descriptor past 1,024, which select() refuses: the pipeline polls.
    # A statement of 4 MB fills the socket's buffer, so the send waits to write too.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        assert hard >= 1_200, f"this test holds 1,100 descriptors; the hard limit is {hard}"
    if soft != resource.RLIM_INFINITY and soft < 1_200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1_200, hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1_100)]
    try:
        with psycopg.connect(conn.info.dsn) as far:
            assert far.fileno() >= 1_024
            pipeline = LibpqPipeline(far)
            big = "x" * 4_000_000
            pipeline.execute("INSERT INTO t (id, name) VALUES ($1::BIGINT, $2::TEXT)", [1, big])
            pipeline.send()
            length = pipeline.execute("SELECT length(name) FROM t WHERE id = $1::BIGINT", [1])
            assert length.rows() == [(4_000_000,)]
            pipeline.leave()
            far.commit()
    finally:
        for descriptor in held:
            os.close(descriptor)
    assert [row[0] for row in _rows(conn)] == [1]


@pytest.mark.parametrize("caller_failing", [False, True])
def test_a_failure_amid_the_answers_closes_the_connection_rather_than_leave_it_in_the_pipeline(
    conn: psycopg.Connection[tuple[object, ...]],
    monkeypatch: pytest.MonkeyPatch,
    caller_failing: bool,
) -> None:
    # A failure that is not PostgreSQL's (here: in the wait for the answers) leaves them unread,
    # and libpq will not leave pipeline mode with answers unread: psycopg would then refuse every
    # command on the connection. Closed instead, it is a lost connection, which callers know.
    with psycopg.connect(conn.info.dsn) as other:
        pipeline = LibpqPipeline(other)
        pipeline.execute("INSERT INTO t (id, name) VALUES ($1::BIGINT, $2::TEXT)", [1, "a"])

        def broken(socket: int, event: int) -> None:
            raise RuntimeError("interrupted")

        monkeypatch.setattr(pq_pipeline, "_wait", broken)
        with pytest.raises(RuntimeError, match="interrupted"):
            pipeline.leave(RuntimeError("the batch failed") if caller_failing else None)
        monkeypatch.undo()
        assert other.closed
        with pytest.raises(psycopg.OperationalError):
            other.execute("SELECT 1")
    assert _rows(conn) == []  # nothing committed
