"""``python -m benchmarks.pglookups [--sizes 10000,1000000,10000000]``: what PostgreSQL itself
spends on BatchGetConversations(100) at each table size, with no convhub server in the way.

For each size it fills a fresh database as ``benchmarks.run`` does (``prefill``, then
``ANALYZE``), draws the same 256 requests of 100 IDs (same seed, same rows of the main app), and
sends their two statements one after another on one connection, prepared, exactly as the server
renders them: the versions of the 100 (``SELECT id, version … = ANY(…)``), then the rows in full
(what a BatchGet reads for the conversations it has not kept). For each it prints the queries a
second; the CPU a query of the PostgreSQL backend that answered them, read from ``/proc`` (so
PostgreSQL must run on this host; the client's own time is not in it); and the blocks a query
found in shared buffers and read from outside them (``EXPLAIN (ANALYZE, BUFFERS)`` of each
request once, after the timed queries).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlalchemy as sa
from tests.postgres import PostgresMissing

from benchmarks.databases import fresh_database, prepare, refresh_statistics
from benchmarks.options import MAX_SIZE, listed
from benchmarks.prefill import MAIN_SLOT, disk_problem, libpq_url, minimum_size, prefill, settle
from benchmarks.procs import tree_cpu_seconds
from benchmarks.workload import BATCH, BATCH_POOL, BATCH_SEED
from convhub.store.repositories import conversations

COZE_TARGETS = 1000  # benchmarks.run's default: the same table
# The statements a BatchGet sends on PostgreSQL (store/repositories/conversations.py).
STATEMENTS = {
    "versions": conversations._VERSIONS,
    "rows": conversations._SELECT_MANY_VERSIONED,
}


@dataclass(frozen=True, slots=True)
class Measured:
    size: int
    statement: str
    queries_per_second: float
    backend_cpu_us: float  # a query
    blocks_hit: float  # a query
    blocks_read: float  # a query, from outside shared buffers


def _sql(name: str, url: str) -> str:
    """The statement's text as the server sends it on ``url`` (psycopg's named placeholder)."""
    statement, _ = STATEMENTS[name].bind("postgresql", [1])
    engine = sa.create_engine(url)  # for its dialect: nothing connects
    try:
        return str(statement.compile(dialect=engine.dialect))  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def _blocks(
    conn: psycopg.Connection[tuple[int, ...]], sql: str, arrays: Sequence[str]
) -> tuple[float, float]:
    """Shared-buffer blocks a query found there and read from outside, averaged over
    ``arrays`` (``EXPLAIN (ANALYZE, BUFFERS)``: exact, where ``pg_stat_database`` lags)."""
    hit = read = 0
    for array in arrays:
        row = conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, {"ids": array}
        ).fetchone()
        assert row is not None
        plan = row[0][0]["Plan"]  # type: ignore[index]
        hit += int(plan["Shared Hit Blocks"])
        read += int(plan["Shared Read Blocks"])
    return hit / len(arrays), read / len(arrays)


def _measure(
    conn: psycopg.Connection[tuple[int, ...]],
    sql: str,
    arrays: Sequence[str],
    size: int,
    name: str,
    seconds: float,
    warmup: float,
) -> Measured:
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    pid = int(row[0])

    def send_for(duration: float) -> int:
        sent, deadline = 0, time.monotonic() + duration
        while time.monotonic() < deadline:
            conn.execute(sql, {"ids": arrays[sent % len(arrays)]}, prepare=True).fetchall()
            sent += 1
        return sent

    answered = conn.execute(sql, {"ids": arrays[0]}, prepare=True).fetchall()
    if len(answered) != BATCH:
        raise RuntimeError(f"{name}: {len(answered)} rows for {BATCH} IDs of the table")
    send_for(warmup)
    cpu, started = tree_cpu_seconds(pid), time.monotonic()  # a backend has no children
    sent = send_for(seconds)
    elapsed, used = time.monotonic() - started, tree_cpu_seconds(pid) - cpu
    hit, read = _blocks(conn, sql, arrays)
    return Measured(
        size=size,
        statement=name,
        queries_per_second=sent / elapsed,
        backend_cpu_us=used / sent * 1e6,
        blocks_hit=hit,
        blocks_read=read,
    )


def measure_size(size: int, seconds: float, warmup: float, workdir: Path) -> list[Measured]:
    with fresh_database("postgresql", workdir) as url:
        tenant = prepare(url)
        placed, took = prefill(url, tenant, size, COZE_TARGETS)
        refresh_statistics(url)
        settle(url)
        print(f"[{time.strftime('%H:%M:%S')}] {size:,} conversations prefilled in {took:.0f} s")
        draw = random.Random(BATCH_SEED)
        ids = placed.slot_ids(MAIN_SLOT)
        arrays = [
            "{" + ",".join(map(str, draw.sample(ids, BATCH))) + "}" for _ in range(BATCH_POOL)
        ]
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            return [
                _measure(conn, _sql(name, url), arrays, size, name, seconds, warmup)
                for name in STATEMENTS
            ]


def report(results: Sequence[Measured]) -> str:
    lines = [
        f"PostgreSQL alone, BatchGet(100)'s statements, one connection, {BATCH_POOL} requests of "
        f"{BATCH} IDs of the main app replayed",
        "",
        "| table | statement | queries/s | backend CPU µs a query | µs an ID | blocks hit | read |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for m in results:
        lines.append(
            f"| {m.size:,} | {m.statement} | {m.queries_per_second:,.0f} | "
            f"{m.backend_cpu_us:,.0f} | {m.backend_cpu_us / BATCH:.1f} | "
            f"{m.blocks_hit:.0f} | {m.blocks_read:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pglookups", description=__doc__)
    parser.add_argument(
        "--sizes",
        type=listed(int),
        default=[10_000, 1_000_000, 10_000_000],
        help="table sizes, e.g. 10000,1000000",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured, per statement")
    parser.add_argument("--warmup", type=float, default=2.0, help="before each measurement")
    args = parser.parse_args(argv)
    least = minimum_size(COZE_TARGETS, BATCH)
    if not args.sizes or any(not least <= size <= MAX_SIZE for size in args.sizes):
        parser.error(f"--sizes takes table sizes from {least:,} to {MAX_SIZE:,}")
    if not (args.seconds > 0 and args.warmup >= 0):
        parser.error("need --seconds above 0 and --warmup of 0 or more")
    results: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="convhub-pglookups-") as workdir:
        short = disk_problem("postgresql", Path(workdir), max(args.sizes))
        if short:
            print(f"benchmarks.pglookups: not enough disk: {short}", file=sys.stderr)
            return 2
        try:
            for size in args.sizes:
                results.extend(measure_size(size, args.seconds, args.warmup, Path(workdir)))
        except PostgresMissing as missing:
            print(f"benchmarks.pglookups: {missing}", file=sys.stderr)
            return 2
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
