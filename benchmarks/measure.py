"""One measurement: load generator process(es) against a running server for a fixed window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.loadgen import write_pool
from benchmarks.procs import (
    REPO,
    child_env,
    cpu_snapshot,
    others_cpu_percent,
    stop,
    tree_connections,
    tree_context_switches,
    tree_cpu_seconds,
    tree_pids,
    tree_rss,
    tree_thread_cpu_seconds,
    writer_batches,
)

SPAWN_SLACK_SECONDS = 1.0  # time for the generator processes to start before warm-up counts
_EXIT_GRACE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Load:
    connections: int
    duration: float
    warmup: float
    generators: int = 1


@dataclass
class Measurement:
    """The raw numbers of one timed window."""

    engine: str
    operation: str
    run: int
    http_server: str
    workers: int
    table: int  # conversations prefilled before the set-up (0: the API-made set-up alone)
    started_at: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    ok: int
    window_seconds: float
    errors: dict[str, int] = field(default_factory=dict)
    warmup_errors: dict[str, int] = field(default_factory=dict)
    error_sample: str = ""
    generator_cpu_percent: list[float] = field(default_factory=list)
    server_cpu_percent: float = 0.0
    machine_cpu_percent: float = 0.0
    other_cpu_percent: dict[str, float] = field(default_factory=dict)
    # the server tree's CPU by thread (``tree_thread_cpu_seconds``: main = the event loops)
    server_thread_cpu_percent: dict[str, float] = field(default_factory=dict)
    server_rss_kb: int = 0  # resident memory of the server's process tree as the window ended
    # context switches a second, of every thread of the server's process tree
    server_switches_per_second: float = 0.0
    server_processes: list[dict[str, object]] = field(default_factory=list)  # pid, name, rss_kb
    # the writers' group commits in the window (``/metrics``): writes and batches a second, all
    # the server's workers together (0: none, or a server that does not count them)
    writer_writes_per_second: float = 0.0
    writer_batches_per_second: float = 0.0
    # the load's connections each server process held halfway through the window, most first
    connections: list[int] = field(default_factory=list)
    # a row of reads and writes (``Operation.writes``): each kind's latency apart (0: not split)
    writes_p50_ms: float = 0.0
    writes_p99_ms: float = 0.0
    reads_p50_ms: float = 0.0
    reads_p99_ms: float = 0.0
    # --paired-ceiling: the ceiling's req/s in the window just before this one (0: not paired)
    paired_ceiling_rps: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def switches_per_request(self) -> float:
        return self.server_switches_per_second / max(self.requests_per_second, 1e-9)

    @property
    def writes_per_batch(self) -> float:
        """How many writes a group commit held, on average (0: no batch in the window)."""
        if not self.writer_batches_per_second:
            return 0.0
        return self.writer_writes_per_second / self.writer_batches_per_second


@dataclass(frozen=True, slots=True)
class Apart:
    """A row of reads and writes: the latencies (ns, sorted) of each kind."""

    reads: list[int]
    writes: list[int]

    def percentiles(self) -> dict[str, float]:
        """Measurement's fields for each kind's p50 and p99 (ms)."""
        return {
            "writes_p50_ms": percentile(self.writes, 0.50) / 1e6,
            "writes_p99_ms": percentile(self.writes, 0.99) / 1e6,
            "reads_p50_ms": percentile(self.reads, 0.50) / 1e6,
            "reads_p99_ms": percentile(self.reads, 0.99) / 1e6,
        }


def percentile(ordered: Sequence[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted values; 0 when there are none."""
    if not ordered:
        return 0.0
    rank = max(1, round(fraction * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _spawn(
    index: int,
    port: int,
    pool_file: Path,
    connections: int,
    start_at: float,
    load: Load,
    check: str,
    offset: int,
    writes: bytes,
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        f"--port={port}",
        f"--pool={pool_file}",
        f"--connections={connections}",
        f"--start-at={start_at:.6f}",
        f"--duration={load.duration}",
        f"--offset={offset}",
        f"--latencies-out={pool_file}.{index}.lat",
        f"--check={check}",
        f"--writes={writes.decode()}",
    ]
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _split(connections: int, parts: int) -> list[int]:
    return [connections // parts + (i < connections % parts) for i in range(parts)]


def _sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        time.sleep(delay)


def run_load(
    *,
    port: int,
    pool: Sequence[bytes],
    load: Load,
    server_pid: int | None,
    workdir: Path,
    check: str = "volc",
    fresh: bool = False,
    writes: bytes = b"",
) -> tuple[list[dict[str, object]], list[int], dict[str, Any], Apart | None]:
    """Run the generators once; return their reports, all latencies (sorted), CPU figures and,
    given ``writes``, the latencies of the requests that hold it and of the others, apart.

    ``check`` says how a 200 carrying an error is recognised (see ``benchmarks.loadgen.CHECKS``).
    ``fresh``: every request of the pool must be sent at most once, so each generator starts at
    the beginning of its own share of the pool (otherwise at a small prime offset, so that the
    generators are not in lockstep)."""
    pool_file = workdir / f"pool-{time.monotonic_ns()}.bin"
    write_pool(pool_file, pool)
    start_at = time.time() + SPAWN_SLACK_SECONDS + load.warmup
    shares = _split(load.connections, load.generators)
    offsets = [i * len(pool) // len(shares) if fresh else i * 7919 for i in range(len(shares))]
    procs = [
        _spawn(i, port, pool_file, n, start_at, load, check, offsets[i], writes)
        for i, n in enumerate(shares)
    ]
    try:
        cpu = _watch_window(start_at, load.duration, server_pid, [p.pid for p in procs], port)
        reports = [_collect(p, start_at + load.duration + _EXIT_GRACE_SECONDS) for p in procs]
    finally:
        for process in procs:
            stop(process)
    reads: list[int] = []
    written: list[int] = []
    for index in range(len(procs)):
        reads += _latencies(Path(f"{pool_file}.{index}.lat"))
        if writes:
            written += _latencies(Path(f"{pool_file}.{index}.lat.writes"))
    apart = Apart(sorted(reads), sorted(written)) if writes else None
    return reports, sorted(reads + written), cpu, apart


def _latencies(path: Path) -> array[int]:
    samples = array("q")
    samples.frombytes(path.read_bytes())
    return samples


def _watch_window(
    start_at: float, duration: float, server_pid: int | None, generator_pids: list[int], port: int
) -> dict[str, Any]:
    """CPU during the window (the server's process tree, the whole box, everything else), the
    server tree's resident memory as it ends, how its processes share the connections halfway
    through, and its writers' batches (read from its ``/metrics`` just after the CPU, at each
    end: under load the answer waits its turn behind the load's requests)."""
    _sleep_until(start_at)
    server0 = tree_cpu_seconds(server_pid) if server_pid else 0.0
    switches0 = tree_context_switches(server_pid) if server_pid else 0
    threads0 = tree_thread_cpu_seconds(server_pid) if server_pid else {}
    busy0, total0 = _machine_busy()
    before = cpu_snapshot()
    batches0 = writer_batches(port) if server_pid else None
    _sleep_until(start_at + duration / 2)  # the generators close their connections at the end
    connections = tree_connections(server_pid, port) if server_pid else []
    _sleep_until(start_at + duration)
    server1 = tree_cpu_seconds(server_pid) if server_pid else 0.0
    switches1 = tree_context_switches(server_pid) if server_pid else 0
    threads1 = tree_thread_cpu_seconds(server_pid) if server_pid else {}
    busy1, total1 = _machine_busy()
    after = cpu_snapshot()
    batches1 = writer_batches(port) if batches0 is not None else None
    writes, batches = (
        (batches1[0] - batches0[0], batches1[1] - batches0[1])
        if batches0 is not None and batches1 is not None
        else (0.0, 0.0)
    )
    processes = tree_rss(server_pid) if server_pid else []
    mine = {os.getpid(), *generator_pids, *(tree_pids(server_pid) if server_pid else [])}
    return {
        "server_cpu_percent": 100.0 * (server1 - server0) / duration,
        "server_switches_per_second": (switches1 - switches0) / duration,
        "server_thread_cpu_percent": {
            name: 100.0 * (seconds - threads0.get(name, 0.0)) / duration
            for name, seconds in threads1.items()
        },
        "machine_cpu_percent": 100.0 * (busy1 - busy0) / max(total1 - total0, 1),
        "other_cpu_percent": others_cpu_percent(before, after, mine, duration),
        "server_rss_kb": sum(int(str(p["rss_kb"])) for p in processes),
        "server_processes": processes,
        "connections": connections,
        "writer_writes_per_second": writes / duration,
        "writer_batches_per_second": batches / duration,
    }


def _collect(process: subprocess.Popen[bytes], deadline: float) -> dict[str, object]:
    try:
        out, err = process.communicate(timeout=max(deadline - time.time(), 1.0))
    except subprocess.TimeoutExpired:
        stop(process)
        raise RuntimeError("the load generator did not finish in time") from None
    if process.returncode != 0:
        raise RuntimeError(f"the load generator failed ({process.returncode}): {err.decode()}")
    report: dict[str, object] = json.loads(out)
    return report


@dataclass(frozen=True, slots=True)
class Where:
    """What a window's figures are of, besides the operation: engine, server, workers, table."""

    engine: str
    http_server: str
    workers: int
    table: int


def measure(
    *,
    where: Where,
    operation: str,
    run: int,
    port: int,
    pool: Sequence[bytes],
    load: Load,
    server_pid: int | None,
    workdir: Path,
    check: str = "volc",
    fresh: bool = False,
    writes: bytes = b"",
) -> Measurement:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    reports, latencies, cpu, apart = run_load(
        port=port,
        pool=pool,
        load=load,
        server_pid=server_pid,
        workdir=workdir,
        check=check,
        fresh=fresh,
        writes=writes,
    )
    errors: Counter[str] = Counter()
    warmup_errors: Counter[str] = Counter()
    for report in reports:
        errors.update(counts(report["errors"]))
        warmup_errors.update(counts(report["warmup_errors"]))
    window = max(float(str(r["window_seconds"])) for r in reports)
    return Measurement(
        engine=where.engine,
        operation=operation,
        run=run,
        http_server=where.http_server,
        workers=where.workers,
        table=where.table,
        started_at=started,
        requests_per_second=len(latencies) / window,
        p50_ms=percentile(latencies, 0.50) / 1e6,
        p99_ms=percentile(latencies, 0.99) / 1e6,
        ok=len(latencies),
        window_seconds=window,
        errors=dict(errors),
        warmup_errors=dict(warmup_errors),
        error_sample=next((str(r["error_sample"]) for r in reports if r["error_sample"]), ""),
        generator_cpu_percent=[float(str(r["cpu_percent"])) for r in reports],
        server_cpu_percent=cpu["server_cpu_percent"],
        server_switches_per_second=cpu["server_switches_per_second"],
        machine_cpu_percent=cpu["machine_cpu_percent"],
        other_cpu_percent=cpu["other_cpu_percent"],
        server_thread_cpu_percent=cpu["server_thread_cpu_percent"],
        server_rss_kb=cpu["server_rss_kb"],
        server_processes=cpu["server_processes"],
        connections=cpu["connections"],
        writer_writes_per_second=cpu["writer_writes_per_second"],
        writer_batches_per_second=cpu["writer_batches_per_second"],
        **(apart.percentiles() if apart is not None else {}),
    )


def counts(value: object) -> dict[str, int]:
    assert isinstance(value, dict)
    return {str(k): int(v) for k, v in value.items()}
