"""Subprocesses of the benchmark: servers on free 127.0.0.1 ports, always killed at the end."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_STOP_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for children: this one, with the repository on the import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log.read_bytes()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a child started in its own session, and its own children: SIGTERM, then SIGKILL."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, _STOP_SECONDS), (signal.SIGKILL, _STOP_SECONDS)):
        try:
            os.killpg(process.pid, sig)  # the group of this child only (start_new_session)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def server(
    name: str, argv: Sequence[str], log: Path, port: int, env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    """Start ``python argv...`` (``env`` added to the environment) in its own session; yield once
    /healthz answers 200; kill after."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *argv],
            cwd=REPO,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Server(name=name, process=process, port=port, log=log)
    try:
        wait_healthy(started)
        yield started
    finally:
        stop(process)


def wait_healthy(target: Server, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.process.poll() is not None:
            raise RuntimeError(
                f"{target.name} exited with {target.process.returncode}:\n{target.log_tail()}"
            )
        if _healthz(target.port) == 200:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{target.name} did not answer /healthz in {timeout:.0f} s")


_BATCH_SUM = "convhub_writer_batch_size_sum"
_BATCH_COUNT = "convhub_writer_batch_size_count"


def writer_batches(port: int) -> tuple[float, float] | None:
    """(writes, batches) the server's writers have committed so far, from its ``/metrics`` (the
    sum and count of ``convhub_writer_batch_size``, every worker's added up); None from a server
    that does not count them (the ceiling)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
            text = response.read().decode("utf-8", "replace")
        found = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name in (_BATCH_SUM, _BATCH_COUNT)
        }
    except (OSError, ValueError):  # no server, or not the Prometheus format (the ceiling)
        return None
    if len(found) < 2:
        return None
    return found[_BATCH_SUM], found[_BATCH_COUNT]


def _healthz(port: int) -> int | None:
    request = f"GET /healthz HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection((HOST, port), timeout=2) as conn:
            conn.sendall(request.encode())
            head = conn.recv(64)
    except OSError:
        return None
    return int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return found


def _stat(pid: int | str) -> tuple[str, int]:
    """(command name, user+system ticks) of a process; ("", 0) when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "", 0
    fields = stat[stat.rindex(")") + 2 :].split()
    return stat[stat.index("(") + 1 : stat.rindex(")")], int(fields[11]) + int(fields[12])


def tree_pids(pid: int) -> list[int]:
    """A process and its live descendants (bounded depth)."""
    found, level = [], [pid]
    for _ in range(4):
        found += level
        level = [c for p in level for c in _children(p)]
        if not level:
            break
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its live descendants."""
    return sum(_stat(p)[1] for p in tree_pids(pid)) / _CLK_TCK


def tree_thread_cpu_seconds(pid: int) -> dict[str, float]:
    """User+system CPU so far of the live threads of a process and its live descendants, summed
    by thread: ``main`` for each process's first thread (a server's event loop), else the name
    the thread gave the kernel (``convhub-writer``; ``python`` for one that gave none)."""
    found: dict[str, float] = {}
    for process in tree_pids(pid):
        for task in Path(f"/proc/{process}/task").glob("*"):
            name, ticks = _stat(f"{process}/task/{task.name}")
            if not name:
                continue
            label = "main" if task.name == str(process) else name
            found[label] = found.get(label, 0.0) + ticks / _CLK_TCK
    return found


def tree_context_switches(pid: int) -> int:
    """Context switches (voluntary and not) so far of every live thread of a process and its
    live descendants (a thread that ended takes its count with it)."""
    total = 0
    for process in tree_pids(pid):
        for status in Path(f"/proc/{process}/task").glob("*/status"):
            try:
                lines = status.read_text().splitlines()
            except OSError:
                continue
            total += sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)
    return total


ESTABLISHED, LISTEN = "01", "0A"  # TCP states as /proc/net/tcp writes them


def sockets_on(port: int, state: str) -> set[str]:
    """This machine's TCP sockets on local ``port`` in ``state``, as a process's descriptors link
    to them (``socket:[inode]``; Linux: /proc)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()  # sl, local address:port, remote, state, …, inode
            if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(f"socket:[{fields[9]}]")
    return found


def held(pid: int, sockets: set[str]) -> set[str]:
    """Which of ``sockets`` process ``pid`` holds (none when it is gone)."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return set()
    holds = set()
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target in sockets:
            holds.add(target)
    return holds


def tree_connections(pid: int, port: int) -> list[int]:
    """How many established TCP connections on local ``port`` each process of a tree holds,
    most first, leaving out those that hold none (Linux: /proc)."""
    established = sockets_on(port, ESTABLISHED)
    counts = (len(held(process, established)) for process in tree_pids(pid))
    return sorted((count for count in counts if count), reverse=True)


def rss_kb(pid: int) -> int:
    """Resident memory of one process (VmRSS), in KiB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss(pid: int) -> list[dict[str, object]]:
    """Resident memory of a process and each live descendant: pid, command name, KiB."""
    found: list[dict[str, object]] = []
    for member in tree_pids(pid):
        name, _ = _stat(member)
        if name:
            found.append({"pid": member, "name": name, "rss_kb": rss_kb(member)})
    return found


def cpu_snapshot() -> dict[int, tuple[str, int]]:
    """(name, CPU ticks) of every process on the box, to see what else ran during a window."""
    snapshot = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            name, ticks = _stat(entry.name)
            if name:
                snapshot[int(entry.name)] = (name, ticks)
    return snapshot


def others_cpu_percent(
    before: dict[int, tuple[str, int]],
    after: dict[int, tuple[str, int]],
    mine: set[int],
    seconds: float,
) -> dict[str, float]:
    """CPU (% of one core) of processes not in ``mine``, by command name, highest first."""
    used: dict[str, float] = {}
    for pid, (name, ticks) in after.items():
        if pid in mine:
            continue
        start = before[pid][1] if pid in before else 0
        used[name] = used.get(name, 0.0) + 100.0 * (ticks - start) / _CLK_TCK / seconds
    return dict(
        sorted(((n, round(v, 1)) for n, v in used.items() if v >= 1.0), key=lambda x: -x[1])
    )
