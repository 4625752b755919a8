"""Medians across runs, the Markdown table and the JSON file."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement

CEILING = "ceiling"
BASELINE_SERVER = "uvicorn"  # the ratio is always to the uvicorn ceiling of as many workers


def ceiling_label(http_server: str) -> str:
    return f"plain ASGI hello-world (ceiling, {http_server})"


@dataclass(frozen=True, slots=True)
class Row:
    engine: str
    http_server: str
    workers: int
    table: int
    operation: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    # to the uvicorn ceiling with as many workers (with --paired-ceiling: the median of each
    # run's ratio to the ceiling's window just before it)
    ratio: float
    ratio_own: float  # to the ceiling on the same HTTP server with as many workers
    scaling: float  # req/s over its own req/s with the fewest workers measured
    ceiling_scaling: float  # the same for the ceiling on the same HTTP server
    server_rss_kb: int  # median over runs, the server's process tree as the window ended
    errors: dict[str, int]
    warmup_errors: dict[str, int]
    runs: int


def _total(counts: Sequence[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(total)


Key = tuple[str, str, int, int, str]  # engine, HTTP server, workers, table, operation


def _key(m: Measurement) -> Key:
    return (m.engine, m.http_server, m.workers, m.table, m.operation)


def rows(measurements: Sequence[Measurement]) -> list[Row]:
    """One row per (engine, server, workers, table, operation) in first-seen order, the
    ceilings first."""
    groups: dict[Key, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(_key(m), []).append(m)
    rps = {k: statistics.median(m.requests_per_second for m in g) for k, g in groups.items()}
    fewest = min((m.workers for m in measurements), default=1)

    def ceiling(server: str, workers: int) -> float:
        return rps.get((CEILING, server, workers, 0, ceiling_label(server)), 0.0)

    def ratio(value: float, base: float) -> float:
        return value / base if base else 0.0

    found = []
    for key, group in sorted(groups.items(), key=lambda item: item[0][0] != CEILING):
        engine, server, workers, table, operation = key
        first = (engine, server, fewest, table, operation)
        found.append(
            Row(
                engine=engine,
                http_server=server,
                workers=workers,
                table=table,
                operation=operation,
                requests_per_second=rps[key],
                p50_ms=statistics.median(m.p50_ms for m in group),
                p99_ms=statistics.median(m.p99_ms for m in group),
                ratio=_paired_ratio(group) or ratio(rps[key], ceiling(BASELINE_SERVER, workers)),
                ratio_own=ratio(rps[key], ceiling(server, workers)),
                scaling=ratio(rps[key], rps.get(first, 0.0)),
                ceiling_scaling=ratio(ceiling(server, workers), ceiling(server, fewest)),
                server_rss_kb=round(statistics.median(m.server_rss_kb for m in group)),
                errors=_total([m.errors for m in group]),
                warmup_errors=_total([m.warmup_errors for m in group]),
                runs=len(group),
            )
        )
    return found


def _paired_ratio(group: Sequence[Measurement]) -> float:
    """With ``--paired-ceiling``: the median of each run's ratio to the ceiling's window just
    before it (0 if any run was not paired)."""
    if not group or not all(m.paired_ceiling_rps for m in group):
        return 0.0
    return statistics.median(m.requests_per_second / m.paired_ceiling_rps for m in group)


def _errors_cell(row: Row) -> str:
    total = sum(row.errors.values())
    if not total:
        return "0"
    detail = ", ".join(f"{label} x{n}" for label, n in sorted(row.errors.items()))
    return f"**{total}** ({detail})"


@dataclass(frozen=True, slots=True)
class _Column:
    title: str
    align: str  # the Markdown alignment row's cell
    cell: Callable[[Row], str]


def _rss(row: Row) -> str:
    return f"{row.server_rss_kb / 1024:,.0f}"


def _columns(table_rows: Sequence[Row]) -> list[_Column]:
    servers = {r.http_server for r in table_rows}
    several_workers = len({r.workers for r in table_rows}) > 1
    fewest = min((r.workers for r in table_rows), default=1)
    columns = [
        _Column("engine", "---", lambda r: "—" if r.engine == CEILING else r.engine),
        _Column("workers", "---:", lambda r: str(r.workers)),
        _Column("table", "---:", lambda r: "—" if r.engine == CEILING else f"{r.table:,}"),
        _Column("operation", "---", lambda r: r.operation),
        _Column("req/s (median of runs)", "---:", lambda r: f"{r.requests_per_second:,.0f}"),
        _Column("p50 ms", "---:", lambda r: f"{r.p50_ms:.2f}"),
        _Column("p99 ms", "---:", lambda r: f"{r.p99_ms:.2f}"),
        _Column("ratio to ceiling", "---:", lambda r: f"{r.ratio:.3f}"),
    ]
    for server in sorted(servers - {BASELINE_SERVER}):
        columns.append(
            _Column(f"ratio to {server} ceiling", "---:", lambda r: f"{r.ratio_own:.3f}")
        )
    if several_workers:
        columns += [
            _Column(f"x vs {fewest} worker(s)", "---:", lambda r: f"{r.scaling:.2f}"),
            _Column("ceiling x", "---:", lambda r: f"{r.ceiling_scaling:.2f}"),
        ]
    columns += [
        _Column("server RSS MiB", "---:", _rss),
        _Column("errors", "---", _errors_cell),
    ]
    return columns


def table(table_rows: Sequence[Row]) -> str:
    columns = _columns(table_rows)
    lines = [
        "| " + " | ".join(c.title for c in columns) + " |",
        "|" + "|".join(c.align for c in columns) + "|",
    ]
    lines += ["| " + " | ".join(c.cell(r) for c in columns) + " |" for r in table_rows]
    return "\n".join(lines)


def header(meta: dict[str, Any]) -> str:
    server = meta["http_server"]
    other = "" if server == BASELINE_SERVER else f", convhub on {server} {meta['server_version']}"
    return (
        f"convhub bench, {meta['date']}: nproc {meta['nproc']}, Python {meta['python']}, "
        f"uvicorn {meta['uvicorn']} (loop {meta['loop']}, http {meta['http']}){other}; "
        f"{meta['connections']} connections, {meta['duration']:g} s per measurement after "
        f"{meta['warmup']:g} s warm-up, workers {','.join(map(str, meta['workers']))}, "
        f"tables of {', '.join(f'{n:,}' for n in meta['sizes'])} prefilled conversations, "
        f"{meta['generators']} load-generator process(es); "
        f"figures are medians of {meta['runs']} runs (errors: totals over all runs). "
        f"Code: {meta['code']}."
    )


def name(engine: str, http_server: str, workers: int, table: int, operation: str) -> str:
    """A window's or a row's name in prose: ``sqlite 1,000,000 w2 Modify``."""
    if engine == CEILING:
        return f"ceiling {http_server} w{workers}"
    server = "" if http_server == BASELINE_SERVER else f" {http_server}"
    return f"{engine}{server} {table:,} w{workers} {operation}"


def where(m: Measurement | Row) -> str:
    return name(m.engine, m.http_server, m.workers, m.table, m.operation)


def notes(table_rows: Sequence[Row], measurements: Sequence[Measurement]) -> list[str]:
    """Lines that must not be missed: errors in any run, warm-up errors, code changes."""
    found: list[str] = []
    for m in measurements:
        if m.errors:
            found.append(
                f"ERRORS in {where(m)} run {m.run}: {m.errors}"
                + (f"; first error body: {m.error_sample[:200]!r}" if m.error_sample else "")
            )
    for row in table_rows:
        if row.warmup_errors:
            found.append(f"warm-up errors (not timed) in {where(row)}: {row.warmup_errors}")
    return found


def markdown(
    meta: dict[str, Any],
    table_rows: Sequence[Row],
    extra: Sequence[str],
    warnings: Sequence[str],
    profiles: Sequence[str] = (),
    goals: Sequence[str] = (),
) -> str:
    parts = [header(meta), "", table(table_rows), ""]
    parts += [f"- {line}" for line in extra]
    if goals:
        parts += ["", "**Against the goals of issue 10** (`benchmarks/goals.py`):"]
        parts += [f"- {line}" for line in goals]
    if profiles:
        parts += ["", "**Profiles** (py-spy, top 10 functions by own time, % of busy samples):"]
        parts += [f"- {line}" for line in profiles]
    if warnings:
        parts += ["", "**Look here:**", *[f"- {line}" for line in warnings]]
    return "\n".join(parts).rstrip() + "\n"


def write(
    directory: Path,
    text: str,
    meta: dict[str, Any],
    table_rows: Sequence[Row],
    measurements: Sequence[Measurement],
    generator_check: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "latest.md").write_text(text)
    raw = {
        "meta": meta,
        "generator_check": generator_check,
        **extra,
        "summary": [asdict(r) for r in table_rows],
        "runs": [asdict(m) for m in measurements],
    }
    (directory / "latest.json").write_text(json.dumps(raw, indent=2) + "\n")
