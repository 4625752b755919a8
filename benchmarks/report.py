"""Medians across runs, the Markdown table and the JSON file."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.measure import Measurement

CEILING = "ceiling"
CEILING_LABEL = "plain ASGI hello-world (ceiling)"
COLUMNS = (
    "engine",
    "operation",
    "req/s (median of runs)",
    "p50 ms",
    "p99 ms",
    "ratio to ceiling",
    "errors",
)


@dataclass(frozen=True, slots=True)
class Row:
    engine: str
    operation: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    ratio: float
    errors: dict[str, int]
    warmup_errors: dict[str, int]
    runs: int


def _total(counts: Sequence[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(total)


def summarise(group: Sequence[Measurement], ceiling_rps: float) -> Row:
    rps = statistics.median(m.requests_per_second for m in group)
    return Row(
        engine=group[0].engine,
        operation=group[0].operation,
        requests_per_second=rps,
        p50_ms=statistics.median(m.p50_ms for m in group),
        p99_ms=statistics.median(m.p99_ms for m in group),
        ratio=rps / ceiling_rps if ceiling_rps else 0.0,
        errors=_total([m.errors for m in group]),
        warmup_errors=_total([m.warmup_errors for m in group]),
        runs=len(group),
    )


def rows(measurements: Sequence[Measurement]) -> list[Row]:
    """One row per (engine, operation), in first-seen order; the ceiling row first."""
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.engine, m.operation), []).append(m)
    ceiling = groups.get((CEILING, CEILING_LABEL), [])
    ceiling_rps = statistics.median(m.requests_per_second for m in ceiling) if ceiling else 0.0
    ordered = sorted(groups.values(), key=lambda g: g[0].engine != CEILING)
    return [summarise(g, ceiling_rps) for g in ordered]


def _errors_cell(row: Row) -> str:
    total = sum(row.errors.values())
    if not total:
        return "0"
    detail = ", ".join(f"{label} x{n}" for label, n in sorted(row.errors.items()))
    return f"**{total}** ({detail})"


def _cells(row: Row) -> list[str]:
    return [
        "—" if row.engine == CEILING else row.engine,
        row.operation,
        f"{row.requests_per_second:,.0f}",
        f"{row.p50_ms:.2f}",
        f"{row.p99_ms:.2f}",
        f"{row.ratio:.3f}",
        _errors_cell(row),
    ]


def table(table_rows: Sequence[Row]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in table_rows]
    return "\n".join(lines)


def header(meta: dict[str, Any]) -> str:
    return (
        f"convhub bench, {meta['date']}: nproc {meta['nproc']}, Python {meta['python']}, "
        f"uvicorn {meta['uvicorn']} (loop {meta['loop']}, http {meta['http']}); "
        f"{meta['connections']} connections, {meta['duration']:g} s per measurement after "
        f"{meta['warmup']:g} s warm-up, workers {meta['workers']}, "
        f"{meta['generators']} load-generator process(es); "
        f"figures are medians of {meta['runs']} runs (errors: totals over all runs). "
        f"Code: {meta['code']}."
    )


def notes(table_rows: Sequence[Row], measurements: Sequence[Measurement]) -> list[str]:
    """Lines that must not be missed: errors in any run, warm-up errors, code changes."""
    found: list[str] = []
    for m in measurements:
        if m.errors:
            found.append(
                f"ERRORS in {m.engine} {m.operation} run {m.run}: {m.errors}"
                + (f"; first error body: {m.error_sample[:200]!r}" if m.error_sample else "")
            )
    for row in table_rows:
        if row.warmup_errors:
            found.append(
                f"warm-up errors (not timed) in {row.engine} {row.operation}: {row.warmup_errors}"
            )
    return found


def markdown(
    meta: dict[str, Any], table_rows: Sequence[Row], extra: Sequence[str], warnings: Sequence[str]
) -> str:
    parts = [header(meta), "", table(table_rows), ""]
    parts += [f"- {line}" for line in extra]
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
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "latest.md").write_text(text)
    raw = {
        "meta": meta,
        "generator_check": generator_check,
        "summary": [asdict(r) for r in table_rows],
        "runs": [asdict(m) for m in measurements],
    }
    (directory / "latest.json").write_text(json.dumps(raw, indent=2) + "\n")
