"""``python -m benchmarks.pgclient [--statements 1,4,16] [--transactions 1000]``: the client's CPU
for one transaction shaped as the writer's on PostgreSQL, through psycopg's pipeline (as the
writer sent its batches until ``store/pq_pipeline.py``) and through libpq's own calls (as it
sends them since).

The transaction: ``BEGIN``, N prepared statements of one parameter, a sync that waits for their
answers, then ``COMMIT``: two round trips, as a batch of the writer makes (its statements, then
its commit). psycopg's way: a raw cursor a statement, ``prepare=True``, in
``connection.pipeline()``, then ``commit()``. libpq's way sends the same messages through
``psycopg.pq`` (psycopg's binding of libpq itself, no cursor or pipeline object in Python),
buffered until each round trip's sync: one write to the socket a round trip. Each way runs
alternately, and the median of each is printed: the thread's CPU (``time.thread_time``, the
kernel's share of the socket writes in it), not the wait for PostgreSQL.
"""

from __future__ import annotations

import argparse
import select
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import psycopg
from psycopg import pq
from tests.postgres import POSTGRES_ADMIN_URL

from benchmarks.options import listed
from benchmarks.prefill import libpq_url

STATEMENT = "SELECT $1::bigint"
_DONE = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


@dataclass(frozen=True, slots=True)
class Measured:
    statements: int
    psycopg_us: float  # the client's CPU for one transaction, median
    libpq_us: float


def _through_psycopg(conn: psycopg.Connection[tuple[object, ...]], statements: int) -> None:
    with conn.pipeline():
        for _ in range(statements):
            cursor = psycopg.RawCursor(conn)
            cursor.execute(STATEMENT, ["1"], prepare=True)
            cursor.close()
    conn.commit()


class _Libpq:
    """The same transaction through libpq's calls on a connection of its own."""

    def __init__(self, conninfo: str) -> None:
        self.pgconn = pq.PGconn.connect(conninfo.encode())
        if self.pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError(self.pgconn.error_message.decode(errors="replace"))
        prepared = self.pgconn.prepare(b"one", STATEMENT.encode())
        if prepared.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.OperationalError(prepared.error_message.decode(errors="replace"))
        self.pgconn.nonblocking = 1
        self.socket = self.pgconn.socket

    def transaction(self, statements: int) -> None:
        pgconn = self.pgconn
        pgconn.enter_pipeline_mode()
        pgconn.send_query_params(b"BEGIN", None)
        for _ in range(statements):
            pgconn.send_query_prepared(b"one", [b"1"])
        answered = self._round_trip()
        if len(answered) != statements + 1:
            raise AssertionError(f"{len(answered)} answers to {statements + 1} statements")
        pgconn.send_query_params(b"COMMIT", None)
        self._round_trip()
        pgconn.exit_pipeline_mode()

    def _round_trip(self) -> list[pq.abc.PGresult]:
        """Sync, send everything queued in one go, and read every answer up to the sync."""
        pgconn = self.pgconn
        pgconn.pipeline_sync()
        while pgconn.flush():
            select.select([], [self.socket], [])
        answers: list[pq.abc.PGresult] = []
        while True:
            while pgconn.is_busy():
                select.select([self.socket], [], [])
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:  # the end of one statement's results
                continue
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                return answers
            if result.status not in _DONE:
                raise psycopg.DatabaseError(result.error_message.decode(errors="replace"))
            answers.append(result)

    def close(self) -> None:
        self.pgconn.finish()


def _median_cpu(run: Callable[[], None], times: int) -> float:
    spent = []
    for _ in range(times):
        start = time.thread_time()
        run()
        spent.append(time.thread_time() - start)
    return statistics.median(spent) * 1e6


def measure(statement_counts: Sequence[int], transactions: int, url: str) -> list[Measured]:
    conninfo = libpq_url(url)
    raw = _Libpq(conninfo)
    try:
        with psycopg.connect(conninfo) as conn:
            results = []
            for count in statement_counts:
                ours = partial(_through_psycopg, conn, count)
                theirs = partial(raw.transaction, count)
                for _ in range(20):  # warm-up: both statements prepared, caches filled
                    ours()
                    theirs()
                # Alternated in tenths, so that a drift of the machine meets both ways alike.
                tenth = max(1, transactions // 10)
                spent = [(_median_cpu(ours, tenth), _median_cpu(theirs, tenth)) for _ in range(10)]
                results.append(
                    Measured(
                        count,
                        statistics.median(a for a, _ in spent),
                        statistics.median(b for _, b in spent),
                    )
                )
            return results
    finally:
        raw.close()


def report(results: Sequence[Measured]) -> str:
    lines = [
        "| statements | psycopg's pipeline, µs | libpq's calls, µs | psycopg / libpq |",
        "|---:|---:|---:|---:|",
    ]
    for m in results:
        lines.append(
            f"| {m.statements} | {m.psycopg_us:,.0f} | {m.libpq_us:,.0f} | "
            f"{m.psycopg_us / m.libpq_us:.1f}x |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pgclient", description=__doc__)
    parser.add_argument(
        "--statements", type=listed(int), default=[1, 4, 16], help="a transaction's, e.g. 1,4,16"
    )
    parser.add_argument("--transactions", type=int, default=1000, help="measured, each way")
    args = parser.parse_args(argv)
    if not args.statements or any(count < 1 for count in args.statements):
        parser.error("--statements takes counts of 1 or more")
    if args.transactions < 1:
        parser.error("--transactions takes 1 or more")
    try:
        results = measure(args.statements, args.transactions, POSTGRES_ADMIN_URL)
    except psycopg.OperationalError as error:
        print(f"benchmarks.pgclient: PostgreSQL at {POSTGRES_ADMIN_URL}: {error}", file=sys.stderr)
        return 2
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
