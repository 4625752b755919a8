"""``python -m benchmarks.pgclient [--statements 1,4,16] [--transactions 1000]``: the client's CPU
for one transaction shaped as the writer's on PostgreSQL, through psycopg's pipeline (as the
writer sent its batches until ``store/pq_pipeline.py``) and through the writer's own pipeline
over libpq's calls (as it sends them since).

The transaction: ``BEGIN``, N prepared statements of one parameter, a sync that waits for their
answers, then ``COMMIT``, as a batch of the writer makes (its statements, then its commit).
psycopg's way: a raw cursor a statement, ``prepare=True``, in ``connection.pipeline()``, then
``commit()`` (its ``BEGIN`` takes a round trip of its own). The writer's way: ``LibpqPipeline``,
whose messages wait in libpq's buffer until the sync (one socket write, ``BEGIN`` among them),
then psycopg's ``commit()``. Each way has a connection of its own, the two run alternately, and
the median of each is printed: the thread's CPU (``time.thread_time``, the kernel's share of the
socket writes in it), not the wait for PostgreSQL.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import psycopg
from tests.postgres import POSTGRES_ADMIN_URL

from benchmarks.options import listed
from benchmarks.prefill import libpq_url
from convhub.store.pq_pipeline import LibpqPipeline

STATEMENT = "SELECT $1::bigint"


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


def _through_libpq(conn: psycopg.Connection[tuple[object, ...]], statements: int) -> None:
    """The writer's way: its pipeline over libpq's calls (``store/pq_pipeline.py``), then
    psycopg's commit."""
    pipeline = LibpqPipeline(conn)
    answers = [pipeline.execute(STATEMENT, [1]) for _ in range(statements)]
    pipeline.leave()
    if not all(answer.done for answer in answers):
        raise AssertionError("a statement left unanswered")
    conn.commit()


def _median_cpu(run: Callable[[], None], times: int) -> float:
    spent = []
    for _ in range(times):
        start = time.thread_time()
        run()
        spent.append(time.thread_time() - start)
    return statistics.median(spent) * 1e6


def measure(statement_counts: Sequence[int], transactions: int, url: str) -> list[Measured]:
    conninfo = libpq_url(url)
    with psycopg.connect(conninfo) as ours, psycopg.connect(conninfo) as theirs:
        results = []
        for count in statement_counts:
            psycopg_way = partial(_through_psycopg, ours, count)
            libpq_way = partial(_through_libpq, theirs, count)
            for _ in range(20):  # warm-up: both statements prepared, caches filled
                psycopg_way()
                libpq_way()
            # Alternated in tenths, so that a drift of the machine meets both ways alike.
            tenth = max(1, transactions // 10)
            spent = [
                (_median_cpu(psycopg_way, tenth), _median_cpu(libpq_way, tenth)) for _ in range(10)
            ]
            results.append(
                Measured(
                    count,
                    statistics.median(a for a, _ in spent),
                    statistics.median(b for _, b in spent),
                )
            )
        return results


def report(results: Sequence[Measured]) -> str:
    lines = [
        "| statements | psycopg's pipeline, µs | the writer's, over libpq, µs | psycopg / libpq |",
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
