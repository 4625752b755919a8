"""``python -m benchmarks.answers [--rounds 3] [--duration 5]``: what the server's CPU an answer is
when its head and body go to the socket in two writes (uvicorn's own httptools protocol) and in
one (convhub's, ``convhub.edge.HttpToolsProtocol``).

Both serve the plain-ASGI ceiling's hello-world (``benchmarks.ceiling``) on uvicorn, one worker,
driven by the load generator as ``make bench`` drives the ceiling (64 keep-alive connections, a
warm-up, then a timed window). The two alternate, the first swapped each round; each window gives
req/s and the server's CPU (user and kernel, from ``/proc``) over the answers of the window, and
the medians are printed. Same app, same uvicorn: the difference is the protocol's writes. On
loopback the kernel delivers each segment and wakes the client inside the write, so the second
write is paid for in the server's kernel time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import launch, workload
from benchmarks.measure import Load, Where, measure
from benchmarks.procs import free_port, server
from benchmarks.run import DUMMY_TENANT

PROTOCOLS = ("uvicorn", "convhub")
CONNECTIONS = 64
WARM_UP_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Window:
    protocol: str
    requests_per_second: float
    cpu_us: float  # the server's CPU an answer, user and kernel


def window(protocol: str, duration: float, workdir: Path) -> Window:
    """One timed window of the ceiling served through ``protocol``."""
    port = free_port()
    argv, env = launch.ceiling("uvicorn", port, 1)
    argv = [*argv, f"--protocol={protocol}"]
    logfile = workdir / f"ceiling-{protocol}.log"
    with server(f"ceiling ({protocol} protocol)", argv, logfile, port, env) as ceiling:
        pool = workload.hello_pool(DUMMY_TENANT, port)
        found = measure(
            where=Where("ceiling", "uvicorn", 1, 0),
            operation=protocol,
            run=1,
            port=port,
            pool=pool,
            load=Load(connections=CONNECTIONS, duration=duration, warmup=WARM_UP_SECONDS),
            server_pid=ceiling.process.pid,
            workdir=workdir,
        )
    if found.error_count or not found.ok:
        raise RuntimeError(f"{protocol}: {found.errors} {found.error_sample}")
    rate = found.requests_per_second
    return Window(protocol, rate, found.server_cpu_percent / 100.0 / rate * 1e6)


def alternate(rounds: int, duration: float) -> list[Window]:
    windows: list[Window] = []
    with tempfile.TemporaryDirectory(prefix="convhub-answers-") as workdir:
        for index in range(rounds):
            order = PROTOCOLS if index % 2 == 0 else PROTOCOLS[::-1]
            for protocol in order:
                windows.append(window(protocol, duration, Path(workdir)))
                print(f"round {index + 1}/{rounds}: {_line(windows[-1])}", file=sys.stderr)
    return windows


def _line(found: Window) -> str:
    rate, cpu = found.requests_per_second, found.cpu_us
    return f"{found.protocol}: {rate:,.0f} req/s, {cpu:.1f} µs an answer"


def report(windows: Sequence[Window]) -> str:
    rows = [
        "| protocol | writes an answer | req/s (median) | server CPU an answer, µs (median) |",
        "|---|---:|---:|---:|",
    ]
    for protocol, writes in zip(PROTOCOLS, (2, 1), strict=True):
        mine = [w for w in windows if w.protocol == protocol]
        rate = statistics.median(w.requests_per_second for w in mine)
        cpu = statistics.median(w.cpu_us for w in mine)
        rows.append(f"| {protocol} | {writes} | {rate:,.0f} | {cpu:.1f} |")
    return "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.answers", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="windows of each protocol")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds a window")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds takes 1 or more")
    if args.duration <= 0:
        parser.error("--duration takes a number of seconds above 0")
    print(report(alternate(args.rounds, args.duration)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
