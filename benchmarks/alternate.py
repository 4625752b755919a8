"""``python -m benchmarks.alternate --base REF [--rounds N] -- <benchmarks.run options>``: this
checkout's code against the code of ``REF``, each build run through ``benchmarks.run`` (one run a
build a round), the two builds alternated ``N`` times.

Which build goes first is swapped each round: on a machine whose speed drifts, the build that
always ran second read up to 22% faster when both builds were the same code. Beside each row's
median req/s it prints the server's CPU a request and the database's share of a core (medians),
and the ceiling's CPU a request in each build's runs: when those differ, the machine changed
between the builds' windows, and the rates say little. Each build's median p99 follows. ``REF``
is checked out in a temporary git worktree, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BUILDS = ("base", "new")
Key = tuple[str, int, int, str]  # engine, workers, table, operation


def order(round_index: int) -> tuple[str, str]:
    """The builds of a round in the order they run: the base first in even rounds."""
    return BUILDS if round_index % 2 == 0 else (BUILDS[1], BUILDS[0])


@dataclass(frozen=True, slots=True)
class Side:
    requests_per_second: float
    server_cpu_us: float  # the server's CPU a request
    database_percent: float  # PostgreSQL's share of a core (0 on SQLite)
    p99_ms: float


@dataclass(frozen=True, slots=True)
class Line:
    key: Key
    base: Side
    new: Side


def _side(windows: Sequence[Mapping[str, Any]]) -> Side:
    rates = [w["requests_per_second"] for w in windows]
    cpu = [
        w["server_cpu_percent"] / 100 / max(w["requests_per_second"], 1e-9) * 1e6 for w in windows
    ]
    database = [w.get("other_cpu_percent", {}).get("postgres", 0.0) for w in windows]
    return Side(
        statistics.median(rates),
        statistics.median(cpu),
        statistics.median(database),
        statistics.median(w["p99_ms"] for w in windows),
    )


def summarize(runs: Mapping[str, Sequence[Sequence[Mapping[str, Any]]]]) -> list[Line]:
    """One line per row measured by both builds, in first-seen order: medians of each build's
    windows. ``runs`` holds, per build, each run's windows (``latest.json``'s ``runs``)."""
    windows: dict[str, dict[Key, list[Mapping[str, Any]]]] = {build: {} for build in BUILDS}
    for build in BUILDS:
        for run in runs[build]:
            for w in run:
                key = (w["engine"], w["workers"], w["table"], w["operation"])
                windows[build].setdefault(key, []).append(w)
    return [
        Line(key, _side(found), _side(windows["new"][key]))
        for key, found in windows["base"].items()
        if key in windows["new"]
    ]


def report(lines: Sequence[Line], base_ref: str) -> str:
    out = [
        f"base: {base_ref}; new: this checkout. Medians: req/s (the server's CPU a request; "
        "PostgreSQL's share of a core); p99",
        "",
        "| row | base | new | req/s change | p99 base | p99 new |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for line in lines:
        engine, workers, table, operation = line.key
        row = f"{engine} w{workers} {table:,} {operation}" if engine != "ceiling" else operation
        change = line.new.requests_per_second / line.base.requests_per_second - 1
        out.append(
            f"| {row} | {_cell(line.base)} | {_cell(line.new)} | {change:+.1%} "
            f"| {line.base.p99_ms:.1f} ms | {line.new.p99_ms:.1f} ms |"
        )
    return "\n".join(out)


def _cell(side: Side) -> str:
    database = f"; {side.database_percent:.0f}%" if side.database_percent else ""
    return f"{side.requests_per_second:,.0f} ({side.server_cpu_us:,.0f} µs{database})"


def _run(tree: Path, args: Sequence[str], log: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
    with log.open("w") as out:
        subprocess.run(
            [sys.executable, "-m", "benchmarks.run", *args, "--runs", "1"],
            cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, check=True,
        )  # fmt: skip
    for line in log.read_text().splitlines():  # each window's figures, as the run printed them
        if " req/s, " in line:
            print(line, file=sys.stderr, flush=True)
    found: list[dict[str, Any]] = json.loads(
        (tree / "benchmarks" / "results" / "latest.json").read_text()
    )["runs"]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.alternate", description=__doc__)
    parser.add_argument("--base", default="HEAD", help="git ref of the code to compare with")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then benchmarks.run's")
    args = parser.parse_args(argv)
    run_args = args.run_args[1:] if args.run_args[:1] == ["--"] else args.run_args
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    runs: dict[str, list[list[dict[str, Any]]]] = {build: [] for build in BUILDS}
    with tempfile.TemporaryDirectory(prefix="convhub-alternate-") as temporary:
        base = Path(temporary) / "base"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(base),
             args.base],
            check=True,
        )  # fmt: skip
        try:
            for i in range(args.rounds):
                for build in order(i):
                    tree = base if build == "base" else REPO
                    log = Path(temporary) / f"{build}-{i + 1}.log"
                    print(f"round {i + 1}/{args.rounds}: {build}", file=sys.stderr, flush=True)
                    runs[build].append(_run(tree, run_args, log))
        finally:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], check=False
            )
    print(report(summarize(runs), args.base))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
