"""The goals of issue 10, judged from one run's rows: what ``make bench`` prints under "Against
the goals", and ``python -m benchmarks.goals [latest.json]`` prints again from a saved run.

A goal is judged only on the rows it names that the run measured: one worker and the smallest
table for the rates, one and two (and four) workers for the scaling, two or more tables for the
flatness. A goal none of whose rows were measured is named as not measured. Each missed figure
says by how much.

The reads' goals are in req/s, set on a machine whose ceiling then made about
``ISSUE_CEILING`` req/s; each read's ratio is printed beside the ratio those req/s were of that
ceiling, since this machine's speed moves through the day and the rates with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from benchmarks import workload
from benchmarks.report import CEILING, Row

ISSUE_CEILING = 33_000  # req/s of the uvicorn hello-world when the goals were set
# BatchGet(100), the group-life issue's reads, and the message pages of both dialects
READS = (
    workload.BATCH_GET,
    workload.USER_CONVERSATIONS,
    workload.SCAN,
    workload.MESSAGES,
    workload.COZE_MESSAGE_LIST,
)
READ_RATE = {"sqlite": 3_000, "postgresql": 1_500}
READ_P99_MS = 50.0
SQLITE_WRITES = {workload.CREATE: 0.30, workload.MODIFY: 0.25, workload.COZE_RENAME: 0.25}
SQLITE_WRITE_P99_MS = 20.0
POSTGRESQL_WRITES = {workload.CREATE: 0.20, workload.MODIFY: 0.15}
FLAT = (workload.CREATE, workload.MODIFY, workload.BATCH_GET)
FLAT_WITHIN = 0.20
ENGINES = ("sqlite", "postgresql")
NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True, slots=True)
class Verdict:
    goal: str
    met: bool | None  # None: none of its rows was measured
    figures: str


def _short(value: float, goal: float) -> str:
    return f"{(goal - value) / goal:.1%} short"


def _over(value: float, bound: float) -> str:
    return f"{(value - bound) / bound:.0%} over"


def _judged(met: Sequence[bool]) -> bool | None:
    return all(met) if met else None


class _Rows:
    def __init__(self, rows: Iterable[Row]) -> None:
        self._rows = [r for r in rows if r.engine != CEILING]
        self._smallest = {
            engine: min((r.table for r in self._rows if r.engine == engine), default=0)
            for engine in ENGINES
        }

    def one(self, engine: str, operation: str, workers: int = 1) -> Row | None:
        """The row at the engine's smallest table."""
        table = self._smallest[engine]
        for r in self._rows:
            if (r.engine, r.workers, r.table, r.operation) == (engine, workers, table, operation):
                return r
        return None

    def tables(self, engine: str, operation: str) -> list[Row]:
        """One worker's rows of every table measured, smallest first."""
        found = [
            r for r in self._rows if (r.engine, r.workers, r.operation) == (engine, 1, operation)
        ]
        return sorted(found, key=lambda r: r.table)

    def operations(self, engine: str, workers: int) -> list[str]:
        """The operations measured with ``workers``, in the run's order."""
        seen = (r.operation for r in self._rows if (r.engine, r.workers) == (engine, workers))
        return list(dict.fromkeys(seen))


def _reads(rows: _Rows, engine: str) -> Verdict:
    rate = READ_RATE[engine]
    parts, met = [], []
    for operation in READS:
        r = rows.one(engine, operation)
        if r is None:
            continue
        fast_enough = r.requests_per_second >= rate
        tail = r.p99_ms <= READ_P99_MS
        met.append(fast_enough and tail)
        parts.append(
            f"{operation} {r.requests_per_second:,.0f} req/s"
            + ("" if fast_enough else f" ({_short(r.requests_per_second, rate)})")
            + f", ratio {r.ratio:.3f} against {rate / ISSUE_CEILING:.3f}"
            + f", p99 {r.p99_ms:.1f} ms"
            + ("" if tail else f" ({_over(r.p99_ms, READ_P99_MS)})")
            + (": met" if fast_enough and tail else ": missed")
        )
    goal = f"Reads on {NAMES[engine]}, one worker: ≥ {rate:,} req/s, p99 ≤ {READ_P99_MS:g} ms"
    return Verdict(goal, _judged(met), "; ".join(parts))


def _writes(rows: _Rows, engine: str, ratios: dict[str, float], p99_ms: float | None) -> Verdict:
    parts, met = [], []
    for operation, wanted in ratios.items():
        r = rows.one(engine, operation)
        if r is None:
            continue
        fast_enough = r.ratio >= wanted
        tail = p99_ms is None or r.p99_ms <= p99_ms
        met.append(fast_enough and tail)
        parts.append(
            f"{operation} {r.ratio:.3f} ({r.requests_per_second:,.0f} req/s)"
            + ("" if fast_enough else f", {_short(r.ratio, wanted)} of {wanted:.2f}")
            + ("" if p99_ms is None else f", p99 {r.p99_ms:.1f} ms")
            + ("" if tail else f" ({_over(r.p99_ms, p99_ms or 0.0)})")
            + (": met" if fast_enough and tail else ": missed")
        )
    each = ", ".join(f"{op} ≥ {ratio:.2f}x" for op, ratio in ratios.items())
    bound = "" if p99_ms is None else f", p99 ≤ {p99_ms:g} ms"
    goal = f"Writes on {NAMES[engine]}, one worker: {each} the ceiling{bound}"
    return Verdict(goal, _judged(met), "; ".join(parts))


def _scaled(rows: _Rows, fewer: int, more: int) -> Iterator[tuple[str, float, Row]]:
    """For each PostgreSQL operation measured with both worker counts: its req/s with ``more``
    over its req/s with ``fewer``, and its row with ``more``."""
    for operation in rows.operations("postgresql", more):
        base = rows.one("postgresql", operation, fewer)
        row = rows.one("postgresql", operation, more)
        if base is not None and row is not None and base.requests_per_second:
            yield operation, row.requests_per_second / base.requests_per_second, row


def _two_workers(rows: _Rows) -> Verdict:
    parts, met = [], []
    for operation, gain, two in _scaled(rows, 1, 2):
        ceiling = two.ceiling_scaling
        met.append(gain >= ceiling)
        parts.append(
            f"{operation} {gain:.2f}x against the ceiling's {ceiling:.2f}x"
            + (": met" if gain >= ceiling else f": missed ({_short(gain, ceiling)})")
        )
    goal = "PostgreSQL, two workers against one: every row gains at least what the ceiling gains"
    return Verdict(goal, _judged(met), "; ".join(parts))


def _four_workers(rows: _Rows) -> Verdict:
    parts, met = [], []
    for operation, gain, _four in _scaled(rows, 2, 4):
        change = gain - 1
        met.append(change >= 0)
        parts.append(f"{operation} {change:+.1%}" + (": met" if change >= 0 else ": missed"))
    goal = "PostgreSQL, four workers not below two"
    return Verdict(goal, _judged(met), "; ".join(parts))


def _worst(rows: Sequence[Row], figure: Callable[[Row], float]) -> float:
    """The change from the smallest table's figure farthest from it, signed."""
    base = figure(rows[0])
    changes = [figure(r) / base - 1 for r in rows[1:]] if base else [0.0]
    return max(changes, key=abs)


def _flat(rows: _Rows, engine: str) -> Verdict:
    parts, met = [], []
    for operation in FLAT:
        sized = rows.tables(engine, operation)
        if len(sized) < 2:
            continue
        rate = _worst(sized, lambda r: r.requests_per_second)
        tail = _worst(sized, lambda r: r.p99_ms)
        flat_rate, flat_tail = abs(rate) <= FLAT_WITHIN, abs(tail) <= FLAT_WITHIN
        met.append(flat_rate and flat_tail)
        missed = [name for name, ok in (("req/s", flat_rate), ("p99", flat_tail)) if not ok]
        parts.append(
            f"{operation} req/s {rate:+.1%}, p99 {tail:+.1%}"
            + (": met" if not missed else f": missed by {' and '.join(missed)}")
        )
    goal = (
        f"{NAMES[engine]}, one worker, flat within ±{FLAT_WITHIN:.0%} across table sizes "
        "(req/s and p99, the change from the smallest table farthest from it)"
    )
    if parts:
        sizes = sorted({r.table for op in FLAT for r in rows.tables(engine, op)})
        parts.insert(0, "tables of " + ", ".join(f"{size:,}" for size in sizes))
    return Verdict(goal, _judged(met), "; ".join(parts))


def verdicts(table_rows: Iterable[Row]) -> list[Verdict]:
    rows = _Rows(table_rows)
    return [
        _reads(rows, "sqlite"),
        _reads(rows, "postgresql"),
        _writes(rows, "sqlite", SQLITE_WRITES, SQLITE_WRITE_P99_MS),
        _writes(rows, "postgresql", POSTGRESQL_WRITES, None),
        _two_workers(rows),
        _four_workers(rows),
        _flat(rows, "sqlite"),
        _flat(rows, "postgresql"),
    ]


def lines(table_rows: Iterable[Row]) -> list[str]:
    """One line a goal: measured ones with their figures, then the ones this run did not."""
    found = verdicts(table_rows)
    judged = [
        f"{v.goal}: **{'met' if v.met else 'missed'}** — {v.figures}"
        for v in found
        if v.met is not None
    ]
    unmeasured = [v.goal for v in found if v.met is None]
    if unmeasured:
        judged.append("Not measured in this run: " + "; ".join(unmeasured))
    return judged


def rows_of(summary: Sequence[dict[str, object]]) -> list[Row]:
    """The rows of a saved run (``latest.json``'s ``summary``)."""
    names = {f.name for f in fields(Row)}
    return [Row(**{k: v for k, v in item.items() if k in names}) for item in summary]  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.goals", description=__doc__)
    parser.add_argument(
        "results",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "latest.json",
        help="a run's JSON (default: benchmarks/results/latest.json)",
    )
    args = parser.parse_args(argv)
    try:
        saved = json.loads(args.results.read_text())
    except (OSError, ValueError) as error:
        parser.error(f"cannot read {args.results}: {error}")
    for line in lines(rows_of(saved["summary"])):
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
