"""``python -m benchmarks.run``: convhub's signed Volcengine calls and its Coze calls (bearer token)
per storage engine, against the plain-ASGI ceiling measured in the same run with the same load
generator.

Writes benchmarks/results/latest.md (also printed) and benchmarks/results/latest.json (every
run's numbers).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import report, workload
from benchmarks.databases import ENGINES, Tenant, fresh_database, prepare, refresh_statistics
from benchmarks.measure import Load, Measurement, counts, measure, run_load
from benchmarks.procs import HOST, REPO, free_port, server
from benchmarks.report import CEILING, CEILING_LABEL

RESULTS = Path(__file__).resolve().parent / "results"
NO_LIMITS = "*=10000000"  # limits stay in the request path but never trip
GENERATOR_CHECK_SECONDS = 5.0
GENERATOR_HEADROOM = 1.2  # the generator must reach this multiple of the ceiling's rate
DUMMY_TENANT = Tenant(
    app_id=1,
    access_key="AKLTbenchceiling",
    secret_key="unused",
    create_app_id=1,
    token="pat_unused",
)
PoolBuilder = Callable[[Tenant, int, workload.Targets], list[bytes]]


@dataclass(frozen=True, slots=True)
class Operation:
    build: PoolBuilder
    check: str  # how the load generator tells a 200 carrying an error: "volc" or "coze"


OPERATIONS: dict[str, Operation] = {
    workload.CREATE: Operation(lambda tenant, port, _: workload.create_pool(tenant, port), "volc"),
    workload.MODIFY: Operation(
        lambda tenant, port, made: workload.modify_pool(tenant, port, made.volc_modify), "volc"
    ),
    workload.BATCH_GET: Operation(
        lambda tenant, port, made: workload.batch_get_pool(tenant, port, made.volc), "volc"
    ),
    workload.USER_CONVERSATIONS: Operation(
        lambda tenant, port, _: workload.user_conversations_pool(tenant, port), "volc"
    ),
    workload.BATCH_ADD: Operation(
        lambda tenant, port, made: workload.batch_add_pool(tenant, port, made.add_groups), "volc"
    ),
    workload.SCAN: Operation(
        lambda tenant, port, made: workload.scan_pool(tenant, port, made.scanned), "volc"
    ),
    workload.SEND: Operation(
        lambda tenant, port, made: workload.send_pool(tenant, port, made.volc), "volc"
    ),
    workload.MESSAGES: Operation(
        lambda tenant, port, made: workload.messages_pool(tenant, port, made.paged), "volc"
    ),
    workload.COZE_RENAME: Operation(
        lambda tenant, port, made: workload.coze_rename_pool(tenant, port, made.coze), "coze"
    ),
    workload.COZE_MESSAGE_CREATE: Operation(
        lambda tenant, port, made: workload.coze_message_create_pool(tenant, port, made.coze),
        "coze",
    ),
    workload.COZE_MESSAGE_LIST: Operation(
        lambda tenant, port, made: workload.coze_message_list_pool(tenant, port, made.coze_listed),
        "coze",
    ),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--engines", default=",".join(ENGINES), help="sqlite,postgresql")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of each server")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before each window")
    parser.add_argument("--generators", type=int, default=1, help="load-generator processes")
    parser.add_argument("--conversations", type=int, default=2000, help="made before timing")
    parser.add_argument("--modify-targets", type=int, default=1000, help="N renamed by Modify")
    parser.add_argument(
        "--coze-targets",
        type=int,
        default=1000,
        help="N Coze conversations renamed by Coze rename and given the timed messages",
    )
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    _validate(parser, args)
    return args


def _validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.engines or any(e not in ENGINES for e in args.engines):
        parser.error(f"--engines takes a comma-separated subset of {','.join(ENGINES)}")
    if not (args.duration > 0 and args.warmup >= 0 and args.duration + args.warmup <= 600):
        parser.error("need 0 < duration and duration + warmup <= 600 s (signatures last 900 s)")
    if not 1 <= args.generators <= args.connections <= 4096:
        parser.error("need 1 <= generators <= connections <= 4096")
    if not (1 <= args.runs <= 50 and 1 <= args.workers <= 64):
        parser.error("need 1 <= runs <= 50 and 1 <= workers <= 64")
    if not workload.BATCH <= args.modify_targets <= args.conversations <= 100_000:
        parser.error(f"need {workload.BATCH} <= modify-targets <= conversations <= 100000")
    if not 1 <= args.coze_targets <= 100_000:
        parser.error("need 1 <= coze-targets <= 100000")


def code_fingerprint() -> str:
    """Short hash of the convhub sources, to tie results to the exact code measured."""
    digest = hashlib.sha256()
    for path in sorted((REPO / "src" / "convhub").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _git_head() -> str:
    try:  # read-only
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.decode().strip() or "unknown"


def _uvicorn_defaults() -> tuple[str, str]:
    """What uvicorn's loop="auto" and http="auto" resolve to here (its own rule)."""
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return loop, http


def metadata(args: argparse.Namespace, fingerprint: str) -> dict[str, Any]:
    loop, http = _uvicorn_defaults()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "uvicorn": importlib.metadata.version("uvicorn"),
        "loop": loop,
        "http": http,
        "connections": args.connections,
        "duration": args.duration,
        "warmup": args.warmup,
        "workers": args.workers,
        "runs": args.runs,
        "generators": args.generators,
        "engines": args.engines,
        "conversations": args.conversations,
        "modify_targets": args.modify_targets,
        "coze_targets": args.coze_targets,
        "code": f"git {_git_head()}, src/convhub sha256 {fingerprint}",
    }


def check_generator(load: Load, workdir: Path) -> dict[str, Any]:
    """The generator's own maximum: flat out against a canned-response server."""
    port = free_port()
    argv = ["-m", "benchmarks.nullserver", f"--port={port}"]
    short = Load(load.connections, GENERATOR_CHECK_SECONDS, 1.0, load.generators)
    with server("null server", argv, workdir / "nullserver.log", port) as null:
        pool = workload.hello_pool(DUMMY_TENANT, port)
        reports, latencies, cpu = run_load(
            port=port, pool=pool, load=short, server_pid=null.process.pid, workdir=workdir
        )
    errors = sum(sum(counts(r["errors"]).values()) for r in reports)
    return {
        "requests_per_second": len(latencies) / GENERATOR_CHECK_SECONDS,
        "generator_cpu_percent": [r["cpu_percent"] for r in reports],
        "null_server_cpu_percent": cpu["server_cpu_percent"],
        "errors": errors,
    }


def measure_ceiling(args: argparse.Namespace, load: Load, workdir: Path) -> list[Measurement]:
    port = free_port()
    argv = ["-m", "benchmarks.ceiling", f"--port={port}", f"--workers={args.workers}"]
    results: list[Measurement] = []
    with server("ceiling", argv, workdir / "ceiling.log", port) as ceiling:
        for run in range(1, args.runs + 1):
            pool = workload.hello_pool(DUMMY_TENANT, port)
            if workload.call_many(port, pool[:1], 1)[0][0] != 200:
                raise RuntimeError("the ceiling server does not answer 200")
            log(f"ceiling run {run}/{args.runs}")
            results.append(
                measure(
                    engine=CEILING,
                    operation=CEILING_LABEL,
                    run=run,
                    port=port,
                    pool=pool,
                    load=load,
                    server_pid=ceiling.process.pid,
                    workdir=workdir,
                )
            )
            log(_brief(results[-1]))
    return results


def _serve_argv(url: str, port: int, workers: int) -> list[str]:
    return [
        "-m",
        "convhub.cli",
        "serve",
        f"--host={HOST}",
        f"--port={port}",
        f"--database-url={url}",
        f"--workers={workers}",
        f"--rate-limits={NO_LIMITS}",
        "--no-access-log",
        "--log-level=warning",
    ]


def measure_engine(
    engine: str, args: argparse.Namespace, load: Load, workdir: Path
) -> tuple[list[Measurement], str]:
    """Every operation, ``runs`` times, on a fresh database; also the server's log tail."""
    home = workdir / engine
    home.mkdir()
    results: list[Measurement] = []
    with fresh_database(engine, home) as url:
        tenant = prepare(url)
        port = free_port()
        argv = _serve_argv(url, port, args.workers)
        with server(f"convhub ({engine})", argv, home / "server.log", port) as convhub:
            log(
                f"{engine}: creating {args.conversations} conversations, "
                f"{args.coze_targets + 1} Coze conversations and "
                f"{workload.LIST_MESSAGES} Coze messages"
            )
            made = workload.set_up(
                tenant, port, args.conversations, args.modify_targets, args.coze_targets
            )
            for run in range(1, args.runs + 1):
                for name, operation in OPERATIONS.items():
                    # The timed writes grow the tables between windows; keep the planner's
                    # statistics current, as autovacuum would (see refresh_statistics).
                    refresh_statistics(url)
                    pool = operation.build(tenant, port, made)
                    workload.verify_pool(port, name, pool)
                    log(f"{engine} {name} run {run}/{args.runs}")
                    measured = measure(
                        engine=engine,
                        operation=name,
                        run=run,
                        port=port,
                        pool=pool,
                        load=load,
                        server_pid=convhub.process.pid,
                        workdir=home,
                        check=operation.check,
                    )
                    results.append(measured)
                    log(_brief(measured))
            tail = convhub.log_tail()
    return results, tail


def _brief(m: Measurement) -> str:
    gen = "/".join(f"{c:.0f}%" for c in m.generator_cpu_percent)
    return (
        f"  {m.requests_per_second:,.0f} req/s, p50 {m.p50_ms:.2f} ms, p99 {m.p99_ms:.2f} ms, "
        f"errors {m.error_count}, CPU server {m.server_cpu_percent:.0f}% gen {gen} "
        f"box {m.machine_cpu_percent:.0f}%, others {m.other_cpu_percent}"
    )


def _cpu_lines(measurements: Sequence[Measurement]) -> list[str]:
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.engine, m.operation), []).append(m)
    cells = []
    for (engine, operation), group in groups.items():
        server_cpu = statistics.median(m.server_cpu_percent for m in group)
        gen = statistics.median(max(m.generator_cpu_percent) for m in group)
        box = statistics.median(m.machine_cpu_percent for m in group)
        name = "ceiling" if engine == CEILING else f"{engine} {operation}"
        cells.append(f"{name} {server_cpu:.0f}/{gen:.0f}/{box:.0f}")
    return [
        "CPU in the window, medians (server tree % of one core / generator % / whole box %): "
        + "; ".join(cells)
    ]


def _others_lines(measurements: Sequence[Measurement]) -> list[str]:
    """The busiest other processes (postgres is the database itself) in any window."""
    peaks: dict[str, tuple[float, str]] = {}
    for m in measurements:
        where = f"{'ceiling' if m.engine == CEILING else m.engine + ' ' + m.operation} run {m.run}"
        for name, percent in m.other_cpu_percent.items():
            if percent > peaks.get(name, (0.0, ""))[0]:
                peaks[name] = (percent, where)
    top = sorted(peaks.items(), key=lambda item: -item[1][0])[:6]
    if not top:
        return ["Other processes: none used 1% of a core in any window."]
    cells = "; ".join(f"{name} {percent:.0f}% ({where})" for name, (percent, where) in top)
    return [f"Other processes, peak % of one core in a window (postgres = the database): {cells}"]


def extra_lines(
    check: dict[str, Any], ceiling_rps: float, measurements: Sequence[Measurement], args: Any
) -> list[str]:
    gen_cpu = "/".join(f"{c:.0f}%" for c in check["generator_cpu_percent"])
    headroom = check["requests_per_second"] / ceiling_rps if ceiling_rps else 0.0
    return [
        f"Load generator alone (canned-response server, {GENERATOR_CHECK_SECONDS:g} s): "
        f"{check['requests_per_second']:,.0f} req/s at {gen_cpu} generator CPU "
        f"(canned server {check['null_server_cpu_percent']:.0f}%; a lower bound unless the "
        "generator is near 100%), "
        f"{headroom:.2f}x the ceiling's median ({ceiling_rps:,.0f} req/s).",
        *_cpu_lines(measurements),
        *_others_lines(measurements),
        f"Create: signed group chats (ConversationType 2) in an app of their own. Modify: "
        "renames one of "
        f"{args.modify_targets} conversations (alternating names). BatchGet(100): 100 existing "
        f"IDs of {args.conversations}, SkipMemberCount left at its default. Ratio = req/s / "
        "ceiling req/s.",
        "Coze rows (Authorization: Bearer token of user bench, in an app of its own): "
        f"rename = PUT /v1/conversations/{{id}} of one of {args.coze_targets} conversations "
        "(alternating names); message create = POST /v1/conversation/message/create, a user "
        "text message into those conversations in turn; message list("
        f"{workload.LIST_LIMIT}) = POST /v1/conversation/message/list, newest "
        f"{workload.LIST_LIMIT} of a conversation of {workload.LIST_MESSAGES} messages.",
    ]


def _contention(measurements: Sequence[Measurement]) -> list[str]:
    """One line when processes other than the benchmark's (and the database) took CPU."""
    busy = [
        (m, {n: p for n, p in m.other_cpu_percent.items() if n != "postgres" and p >= 15})
        for m in measurements
    ]
    hit = [(m, b) for m, b in busy if b]
    if not hit:
        return []
    m, worst = max(hit, key=lambda item: max(item[1].values()))
    name = max(worst, key=lambda n: worst[n])
    return [
        f"other processes on the box used >= 15% of a core in {len(hit)} of {len(busy)} "
        f"windows (worst: {name} {worst[name]:.0f}% in {m.engine} {m.operation} run {m.run}); "
        "figures are noisier than on a quiet box, see other_cpu_percent in latest.json"
    ]


def warnings(
    check: dict[str, Any],
    ceiling_rps: float,
    fingerprint: str,
    server_logs: dict[str, str],
    measurements: Sequence[Measurement],
) -> list[str]:
    found = []
    if check["requests_per_second"] < GENERATOR_HEADROOM * ceiling_rps or check["errors"]:
        found.append(
            "the load generator may be the bottleneck: alone it reached only "
            f"{check['requests_per_second']:,.0f} req/s ({check['errors']} errors)"
        )
    if code_fingerprint() != fingerprint:
        found.append("src/convhub changed while the benchmark ran: results mix code versions")
    found += _contention(measurements)
    for engine, tail in server_logs.items():
        if tail.strip():
            found.append(f"{engine} server log (tail): {tail.strip()[-600:]!r}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    fingerprint = code_fingerprint()
    meta = metadata(args, fingerprint)
    load = Load(args.connections, args.duration, args.warmup, args.generators)
    measurements: list[Measurement] = []
    logs: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="convhub-bench-") as tmp:
        workdir = Path(tmp)
        log("checking the load generator against a canned-response server")
        check = check_generator(load, workdir)
        log(f"  generator alone: {check['requests_per_second']:,.0f} req/s")
        measurements += measure_ceiling(args, load, workdir)
        for engine in args.engines:
            found, logs[engine] = measure_engine(engine, args, load, workdir)
            measurements += found
    table_rows = report.rows(measurements)
    ceiling_rps = table_rows[0].requests_per_second
    text = report.markdown(
        meta,
        table_rows,
        extra_lines(check, ceiling_rps, measurements, args),
        report.notes(table_rows, measurements)
        + warnings(check, ceiling_rps, fingerprint, logs, measurements),
    )
    report.write(RESULTS, text, meta, table_rows, measurements, check)
    print(text)
    log(f"wrote {RESULTS / 'latest.md'} and {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
