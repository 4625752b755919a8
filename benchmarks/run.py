"""``python -m benchmarks.run``: convhub's signed Volcengine calls and its Coze calls (bearer token)
per storage engine, table size and number of workers, against the plain-ASGI ceiling measured in
the same run with the same load generator and as many workers.

Writes benchmarks/results/latest.md (also printed) and benchmarks/results/latest.json (every
run's numbers); with --profile, benchmarks/results/profiles/*.txt too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import goals, launch, lines, options, profiling, report, workload
from benchmarks.databases import Tenant, fresh_database, prepare, refresh_statistics
from benchmarks.measure import (
    SPAWN_SLACK_SECONDS,
    Load,
    Measurement,
    Where,
    counts,
    measure,
    run_load,
)
from benchmarks.prefill import (
    MAIN_SLOT,
    Layout,
    disk_problem,
    drop_timed_creates,
    prefill,
    settle,
)
from benchmarks.procs import REPO, Server, free_port, server
from benchmarks.report import CEILING, ceiling_label

RESULTS = Path(__file__).resolve().parent / "results"
PROFILES = RESULTS / "profiles"
DUMMY_TENANT = Tenant(
    app_id=1,
    access_key="AKLTbenchceiling",
    secret_key="unused",
    create_app_id=1,
    token="pat_unused",
    coze_app_id=1,
)
PoolBuilder = Callable[[Tenant, int, workload.Targets], list[bytes]]
_FRESH_FLOOR = 20_000  # requests in a pool of new single chats, at least
_FRESH_HEADROOM = 4.0  # times the group creates' rate over the window


@dataclass(frozen=True, slots=True)
class Operation:
    build: PoolBuilder
    check: str  # how the load generator tells a 200 carrying an error (see loadgen.CHECKS)
    fresh: bool = False  # every request once only: built per window from new pairs of users
    writes: bytes = b""  # in a row of reads and writes, what its writes hold: timed apart


def _no_pool(tenant: Tenant, port: int, made: workload.Targets) -> list[bytes]:
    raise AssertionError("a fresh pool is built by the window itself")


OPERATIONS: dict[str, Operation] = {
    workload.CREATE: Operation(lambda tenant, port, _: workload.create_pool(tenant, port), "volc"),
    workload.CREATE_SINGLE: Operation(_no_pool, "volc-new", fresh=True),
    workload.MODIFY: Operation(
        lambda tenant, port, made: workload.modify_pool(tenant, port, made.volc_modify), "volc"
    ),
    workload.BATCH_GET: Operation(
        lambda tenant, port, made: workload.batch_get_pool(tenant, port, made.batch), "volc"
    ),
    workload.BATCH_GET_BESIDE_MODIFY: Operation(
        lambda tenant, port, made: workload.batch_get_beside_modify_pool(
            tenant, port, made.batch, made.volc_modify
        ),
        "volc",
        writes=workload.MODIFY_ACTION,
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
        lambda tenant, port, made: workload.coze_rename_pool(tenant, port, made.coze_renamed),
        "coze",
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
_CREATES = (workload.CREATE, workload.CREATE_SINGLE)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


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


def metadata(args: argparse.Namespace, fingerprint: str) -> dict[str, Any]:
    loop, http = launch.uvicorn_defaults()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "uvicorn": importlib.metadata.version("uvicorn"),
        "loop": loop,
        "http": http,
        "http_server": args.http_server,
        "server_version": launch.version(args.http_server),
        "connections": args.connections,
        "duration": args.duration,
        "warmup": args.warmup,
        "workers": args.workers,
        "sizes": args.sizes,
        "runs": args.runs,
        "generators": args.generators,
        "engines": args.engines,
        "operations": args.operations,
        "conversations": args.conversations,
        "modify_targets": args.modify_targets,
        "coze_targets": args.coze_targets,
        "profile": args.profile,
        "code": f"git {_git_head()}, src/convhub sha256 {fingerprint}",
    }


def check_generator(load: Load, workdir: Path) -> dict[str, Any]:
    """The generator's own maximum: flat out against a canned-response server."""
    port = free_port()
    argv = ["-m", "benchmarks.nullserver", f"--port={port}"]
    short = Load(load.connections, lines.GENERATOR_CHECK_SECONDS, 1.0, load.generators)
    with server("null server", argv, workdir / "nullserver.log", port) as null:
        pool = workload.hello_pool(DUMMY_TENANT, port)
        reports, latencies, cpu, _ = run_load(
            port=port, pool=pool, load=short, server_pid=null.process.pid, workdir=workdir
        )
    errors = sum(sum(counts(r["errors"]).values()) for r in reports)
    return {
        "requests_per_second": len(latencies) / lines.GENERATOR_CHECK_SECONDS,
        "generator_cpu_percent": [r["cpu_percent"] for r in reports],
        "null_server_cpu_percent": cpu["server_cpu_percent"],
        "errors": errors,
    }


def measure_ceiling(
    http_server: str, workers: int, args: argparse.Namespace, load: Load, workdir: Path
) -> list[Measurement]:
    port = free_port()
    argv, env = launch.ceiling(http_server, port, workers)
    where = Where(CEILING, http_server, workers, 0)
    results: list[Measurement] = []
    logfile = workdir / f"ceiling-{http_server}-w{workers}.log"
    with server(f"ceiling ({http_server})", argv, logfile, port, env) as ceiling:
        for run in range(1, args.runs + 1):
            log(f"ceiling {http_server} w{workers} run {run}/{args.runs}")
            results.append(ceiling_window(ceiling, where, run, load, workdir))
    return results


def ceiling_window(
    ceiling: Server, where: Where, run: int, load: Load, workdir: Path
) -> Measurement:
    """One timed window of the hello-world on ``ceiling``, after checking it answers 200."""
    pool = workload.hello_pool(DUMMY_TENANT, ceiling.port)
    if workload.call_many(ceiling.port, pool[:1], 1)[0][0] != 200:
        raise RuntimeError("the ceiling server does not answer 200")
    measured = measure(
        where=where,
        operation=ceiling_label(where.http_server),
        run=run,
        port=ceiling.port,
        pool=pool,
        load=load,
        server_pid=ceiling.process.pid,
        workdir=workdir,
    )
    log(lines.brief(measured))
    return measured


@dataclass
class Table:
    """One engine's database at one size, shared by the servers of every worker count."""

    engine: str
    size: int
    url: str
    tenant: Tenant
    home: Path
    placed: Layout
    made: workload.Targets | None = None
    next_pair: int = 0  # the single chats' pairs of users are never handed out twice
    group_rate: dict[int, float] = field(default_factory=dict)  # Create req/s by workers

    def pairs(self, count: int) -> int:
        first = self.next_pair
        self.next_pair += count
        return first


@dataclass
class Findings:
    measurements: list[Measurement] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    prefills: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    profile_files: list[dict[str, Any]] = field(default_factory=list)
    paired: list[Measurement] = field(default_factory=list)  # --paired-ceiling's windows
    warnings: list[str] = field(default_factory=list)
    spy_problem: str | None = None
    spy_checked: bool = False


class Bench:
    def __init__(self, args: argparse.Namespace, load: Load, workdir: Path) -> None:
        self.args = args
        self.load = load
        self.workdir = workdir
        self.found = Findings()
        self.ceilings: dict[tuple[str, int], float] = {}

    def ceiling_rate(self, workers: int) -> float:
        return self.ceilings.get((self.args.http_server, workers), 0.0)

    def run_table(self, engine: str, size: int) -> None:
        home = self.workdir / f"{engine}-{size}"
        home.mkdir()
        with fresh_database(engine, home) as url:
            tenant = prepare(url)
            log(f"{engine}: prefilling {size:,} conversations")
            placed, seconds = prefill(url, tenant, size, self.args.coze_targets)
            log(f"  prefilled in {seconds:.1f} s")
            settled = settle(url)
            log(f"  written to disk in {settled:.1f} s")
            self.found.prefills.append(
                {"engine": engine, "table": size, "seconds": seconds, "settled": settled}
            )
            table = Table(engine, size, url, tenant, home, placed)
            for workers in self.args.workers:
                self.run_server(table, workers)

    def run_server(self, table: Table, workers: int) -> None:
        args = self.args
        port = free_port()
        argv, env = launch.convhub(args.http_server, table.url, port, workers)
        name = f"convhub ({table.engine} {table.size:,}, {args.http_server}, {workers} workers)"
        logfile = table.home / f"server-w{workers}.log"
        with (
            self._ceiling_beside(workers) as ceiling,
            server(name, argv, logfile, port, env) as convhub,
        ):
            _wait_for_workers(table.url, workers, name)
            if table.made is None:
                table.made = self.set_up(table, port)
            for run in range(1, args.runs + 1):
                for slug in args.operations:
                    operation = options.SLUGS[slug]
                    self.window(table, convhub, workers, operation, run, ceiling)
            if args.profile:
                self.profile(table, convhub, workers)
            self.found.logs[name] = convhub.log_tail()
        left = launch.leases_left(table.url)
        if left:
            self.found.warnings.append(
                f"{name}: {left} ID-node lease(s) left after it stopped: its lifespan shutdown "
                "(drain the writer, give the node back) did not run"
            )

    @contextlib.contextmanager
    def _ceiling_beside(self, workers: int) -> Iterator[Server | None]:
        """With ``--paired-ceiling``, the uvicorn ceiling of as many workers, running beside
        convhub (idle but for its windows)."""
        if not self.args.paired_ceiling:
            yield None
            return
        port = free_port()
        argv, env = launch.ceiling(report.BASELINE_SERVER, port, workers)
        logfile = self.workdir / f"paired-ceiling-w{workers}-{port}.log"
        with server("paired ceiling", argv, logfile, port, env) as ceiling:
            yield ceiling

    def _paired_window(self, ceiling: Server, workers: int, run: int, label: str) -> float:
        """A window of the ceiling just before ``label``'s: its req/s."""
        where = Where(CEILING, report.BASELINE_SERVER, workers, 0)
        log(f"ceiling w{workers} before {label}")
        measured = ceiling_window(ceiling, where, run, self.load, self.workdir)
        self.found.paired.append(measured)
        return measured.requests_per_second

    def set_up(self, table: Table, port: int) -> workload.Targets:
        args = self.args
        log(
            f"{table.engine}: creating {args.conversations} conversations, "
            f"{args.coze_targets + 1} Coze conversations and "
            f"{workload.LIST_MESSAGES} Coze messages"
        )
        made = workload.set_up(
            table.tenant, port, args.conversations, args.modify_targets, args.coze_targets
        )
        if not table.size:
            return made
        placed = table.placed
        return dataclasses.replace(
            made,
            volc_modify=placed.spread(MAIN_SLOT, args.modify_targets),
            batch=placed.slot_ids(MAIN_SLOT),
            coze_renamed=placed.coze_ids(),
        )

    def _pool(self, table: Table, port: int, name: str, workers: int) -> list[bytes]:
        """The window's requests, after checking that the first and the last are answered
        right (a fresh pool's check uses two pairs of its own)."""
        operation = OPERATIONS[name]
        assert table.made is not None
        if not operation.fresh:
            pool = operation.build(table.tenant, port, table.made)
            workload.verify_pool(port, name, pool)
            return pool
        probe = workload.create_single_pool(table.tenant, port, table.pairs(2), 2)
        workload.verify_pool(port, name, probe)
        size = self._fresh_size(table, workers)
        return workload.create_single_pool(table.tenant, port, table.pairs(size), size)

    def _fresh_size(self, table: Table, workers: int) -> int:
        """Enough new pairs for the whole window: what the ceiling could answer in it (convhub
        answers less), or, once group creates were measured, a few times their rate."""
        load = self.load
        seconds = SPAWN_SLACK_SECONDS + load.warmup + load.duration + 1.0
        size = self.ceiling_rate(workers) * seconds * 1.1
        if workers in table.group_rate:
            size = min(size, _FRESH_HEADROOM * table.group_rate[workers] * seconds)
        return max(_FRESH_FLOOR, round(size))

    def window(
        self,
        table: Table,
        convhub: Server,
        workers: int,
        name: str,
        run: int,
        ceiling: Server | None = None,
    ) -> None:
        # The timed writes grow the tables between windows; keep the planner's statistics
        # current, as autovacuum would (see refresh_statistics).
        refresh_statistics(table.url)
        pool = self._pool(table, convhub.port, name, workers)
        where = Where(table.engine, self.args.http_server, workers, table.size)
        label = report.name(table.engine, where.http_server, workers, table.size, name)
        paired = 0.0 if ceiling is None else self._paired_window(ceiling, workers, run, label)
        log(f"{label} run {run}/{self.args.runs}")
        measured = measure(
            where=where,
            operation=name,
            run=run,
            port=convhub.port,
            pool=pool,
            load=self.load,
            server_pid=convhub.process.pid,
            workdir=table.home,
            check=OPERATIONS[name].check,
            fresh=OPERATIONS[name].fresh,
            writes=OPERATIONS[name].writes,
        )
        measured.paired_ceiling_rps = paired
        if name == workload.CREATE:
            table.group_rate[workers] = measured.requests_per_second
        if name in _CREATES:
            drop_timed_creates(table.url, table.tenant.create_app_id)
        self.found.measurements.append(measured)
        log(lines.brief(measured))

    def profile(self, table: Table, convhub: Server, workers: int) -> None:
        """One more window per row, under py-spy, after the timed ones."""
        found = self.found
        if not found.spy_checked:
            found.spy_checked = True
            found.spy_problem = profiling.problem(convhub.process.pid)
            if found.spy_problem:
                log(f"no profiles: {found.spy_problem}")
                found.warnings.append(f"--profile: no profiles taken: {found.spy_problem}")
        if found.spy_problem:
            return
        PROFILES.mkdir(parents=True, exist_ok=True)
        load = self.load
        for slug in self.args.operations:
            name = options.SLUGS[slug]
            server_name = self.args.http_server
            label = report.name(table.engine, server_name, workers, table.size, name)
            pool = self._pool(table, convhub.port, name, workers)
            out = PROFILES / f"{table.engine}-{server_name}-{table.size}-w{workers}-{slug}.txt"
            log(f"profiling {label}")
            seconds = SPAWN_SLACK_SECONDS + load.warmup + load.duration
            spy = profiling.record(convhub.process.pid, seconds, out)
            run_load(
                port=convhub.port,
                pool=pool,
                load=load,
                server_pid=None,
                workdir=table.home,
                check=OPERATIONS[name].check,
                fresh=OPERATIONS[name].fresh,
            )
            failed = profiling.finish(spy, timeout=seconds + 60)
            if name in _CREATES:
                drop_timed_creates(table.url, table.tenant.create_app_id)
            if failed or not out.exists():
                found.profiles.append(f"{label}: py-spy failed: {failed!r}")
                continue
            taken = profiling.read(out)
            found.profiles.append(
                f"{label} ({taken.busy} busy samples, {out.name}): {profiling.summary(taken)}"
            )
            found.profile_files.append(
                {"row": label, "file": str(out.relative_to(RESULTS)), "busy_samples": taken.busy,
                 "top_own": [{"function": f, "samples": n} for f, n in taken.top],
                 "waiting_samples": taken.waiting}
            )  # fmt: skip


def _wait_for_workers(url: str, workers: int, name: str, timeout: float = 60.0) -> None:
    """Until every worker has started: /healthz answers as soon as one has, and each takes an
    ID-node lease as it builds its application."""
    deadline = time.monotonic() + timeout
    while launch.leases_left(url) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: not all {workers} workers started in {timeout:.0f} s")
        time.sleep(0.2)


def disk_problems(args: argparse.Namespace, workdir: Path) -> list[str]:
    largest = max(args.sizes)
    found = [disk_problem(engine, workdir, largest) for engine in args.engines]
    return [p for p in found if p]


def main(argv: Sequence[str] | None = None) -> int:
    args = options.parse_args(argv, __doc__)
    fingerprint = code_fingerprint()
    meta = metadata(args, fingerprint)
    load = Load(args.connections, args.duration, args.warmup, args.generators)
    with tempfile.TemporaryDirectory(prefix="convhub-bench-") as tmp:
        workdir = Path(tmp)
        short = disk_problems(args, workdir)
        if short:
            for problem in short:
                print(f"benchmarks.run: not enough disk: {problem}", file=sys.stderr)
            return 2
        bench = Bench(args, load, workdir)
        log("checking the load generator against a canned-response server")
        check = check_generator(load, workdir)
        log(f"  generator alone: {check['requests_per_second']:,.0f} req/s")
        servers = list(dict.fromkeys([report.BASELINE_SERVER, args.http_server]))
        for workers in args.workers:
            for http_server in servers:
                ceilings = measure_ceiling(http_server, workers, args, load, workdir)
                bench.found.measurements += ceilings
                rates = [m.requests_per_second for m in ceilings]
                bench.ceilings[http_server, workers] = statistics.median(rates)
        for engine in args.engines:
            for size in args.sizes:
                bench.run_table(engine, size)
    found = bench.found
    table_rows = report.rows(found.measurements)
    fastest = max(bench.ceilings.values())
    text = report.markdown(
        meta,
        table_rows,
        lines.extra_lines(check, fastest, found.measurements, args, found.prefills)
        + lines.paired_lines(found.paired),
        report.notes(table_rows, [*found.measurements, *found.paired])
        + lines.warnings(
            check,
            fastest,
            code_fingerprint() != fingerprint,
            found.logs,
            found.measurements,
            found.warnings,
        ),
        found.profiles,
        goals.lines(table_rows),
    )
    extra = {
        "prefill": found.prefills,
        "profiles": found.profile_files,
        "paired_ceilings": [dataclasses.asdict(m) for m in found.paired],
    }
    report.write(RESULTS, text, meta, table_rows, found.measurements, check, extra)
    print(text)
    log(f"wrote {RESULTS / 'latest.md'} and {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
