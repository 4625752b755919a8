"""The load generator: one process, uvloop, raw asyncio Protocols, HTTP/1.1 keep-alive.

Run by ``benchmarks.run`` as ``python -m benchmarks.loadgen ...``; prints one JSON object on
stdout and writes the latencies (ns, int64) of the successful requests of the timed window to a
file; with ``--writes`` those of the requests holding that text (a mixed row's writes) to a second
one beside it, ``<file>.writes``, and the others' to the first alone.

Each connection keeps exactly one request in flight: send, read the response (framed by
Content-Length), send the next pre-built request of the shared pool. Warm-up runs from connect
until ``--start-at`` (wall clock), the timed window for ``--duration`` seconds after it; then no
new request is sent, in-flight ones are drained (bounded) and every connection is closed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import resource
import struct
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import cast

import uvloop

from benchmarks.http1 import FramingError, next_message, status_code

HOST = "127.0.0.1"
_LENGTH = struct.Struct(">I")
_DRAIN_SECONDS = 5.0
_MAX_CONNECTS_PER_SLOT = 200
_ERROR_FIELD = b'"Error":'
_ERROR_SCAN_BYTES = 512  # ResponseMetadata comes first; its Error sits in the first bytes
_COZE_OK = b'"code":0'  # meta_data values are strings: only the envelope's code can match
_EXISTED = b'"Exist":true'  # CreateConversation answered an existing conversation: a replay
# How a 200 that carries an error is told apart; "volc-new" also counts a create that found its
# conversation already there (a single chat's pair replayed) as an error.
CHECKS = ("none", "volc", "volc-new", "coze")
_VOLC_ERROR = "HTTP 200 with Error"
_REPLAYED = "HTTP 200 with Exist true (a replay, not a create)"
_COZE_ERROR = "HTTP 200 with code != 0"
_SAMPLE_BYTES = 300


def write_pool(path: Path, requests: Sequence[bytes]) -> None:
    """Store raw requests as length-prefixed records."""
    with path.open("wb") as out:
        for request in requests:
            out.write(_LENGTH.pack(len(request)))
            out.write(request)


def read_pool(path: Path) -> list[bytes]:
    data = path.read_bytes()
    pool: list[bytes] = []
    pos = 0
    while pos < len(data):
        (size,) = _LENGTH.unpack_from(data, pos)
        pos += _LENGTH.size
        pool.append(data[pos : pos + size])
        pos += size
    return pool


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Shared:
    """State every connection of this process shares: the pool, the window and the tallies."""

    def __init__(
        self, pool: list[bytes], offset: int, t0: int, t1: int, check: str, writes: bytes = b""
    ) -> None:
        rotated = pool[offset % len(pool) :] + pool[: offset % len(pool)]
        # Each request with whether it is one of the row's writes (timed apart).
        self.cursor: Iterator[tuple[bytes, bool]] = itertools.cycle(
            [(request, bool(writes) and writes in request) for request in rotated]
        )
        self.t0 = t0
        self.t1 = t1
        self.check = check
        self.latencies = array("q")
        self.write_latencies = array("q")
        self.warmup_ok = 0
        self.errors: Counter[str] = Counter()
        self.warmup_errors: Counter[str] = Counter()
        self.error_sample = ""
        self.connections: list[Connection] = []

    def record(
        self, now: int, started: int, status: int, data: bytes, body: int, end: int, write: bool
    ) -> None:
        label = f"HTTP {status}" if status != 200 else self.body_error(data, body, end)
        in_window = self.t0 <= now < self.t1
        if label is None:
            if in_window:
                (self.write_latencies if write else self.latencies).append(now - started)
            else:
                self.warmup_ok += now < self.t0
            return
        self.fail(label, in_window=in_window)
        if not self.error_sample:
            self.error_sample = data[body : min(end, body + _SAMPLE_BYTES)].decode(
                "utf-8", "replace"
            )

    def body_error(self, data: bytes, body: int, end: int) -> str | None:
        """What is wrong inside a 200, or None: a ``ResponseMetadata.Error`` (Volcengine), a
        ``code`` other than 0 (Coze), an ``Exist`` true where every create must be new."""
        check = self.check
        if check in ("volc", "volc-new"):
            if data.find(_ERROR_FIELD, body, min(end, body + _ERROR_SCAN_BYTES)) >= 0:
                return _VOLC_ERROR
            if check == "volc-new" and data.find(_EXISTED, body, end) >= 0:
                return _REPLAYED
        elif check == "coze":
            at = data.find(_COZE_OK, body, end)
            after = at + len(_COZE_OK)
            if at < 0 or data[after : after + 1].isdigit():
                return _COZE_ERROR
        return None

    def fail(self, label: str, *, in_window: bool) -> None:
        (self.errors if in_window else self.warmup_errors)[label] += 1


class Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight."""

    def __init__(self, shared: Shared, lost: asyncio.Future[None]) -> None:
        self.shared = shared
        self.lost = lost
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.sent_at = 0
        self.write = False  # the request in flight is one of the row's writes
        self.busy = False
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.send_next()

    def send_next(self) -> None:
        now = time.perf_counter_ns()
        if now >= self.shared.t1 or self.transport is None:
            self.busy = False
            return
        request, self.write = next(self.shared.cursor)
        self.busy = True
        self.sent_at = now
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        pos = 0
        try:
            while (found := next_message(data, pos)) is not None:
                body, end = found
                status = status_code(data, pos)
                self.busy = False
                self.shared.record(
                    time.perf_counter_ns(), self.sent_at, status, data, body, end, self.write
                )
                pos = end
        except FramingError as error:
            self.shared.fail("framing error", in_window=True)
            self.shared.error_sample = self.shared.error_sample or str(error)
            self.close()
            return
        if pos < len(data):
            self.buffer = data[pos:]
        if pos and not self.busy:
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closing:
            now = time.perf_counter_ns()
            label = "disconnect mid-request" if self.busy else "disconnect"
            self.shared.fail(label, in_window=now >= self.shared.t0)
        self.transport = None
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


def _factory(conn: Connection) -> Callable[[], Connection]:
    return lambda: conn


async def _drive(port: int, shared: Shared) -> None:
    """Keep one connection slot open until the window ends (reconnecting a bounded number of
    times if the server drops it); return once the connection is closed."""
    loop = asyncio.get_running_loop()
    for _ in range(_MAX_CONNECTS_PER_SLOT):
        if time.perf_counter_ns() >= shared.t1:
            return
        lost: asyncio.Future[None] = loop.create_future()
        conn = Connection(shared, lost)
        try:
            await loop.create_connection(_factory(conn), HOST, port)
        except OSError:
            shared.fail("connect error", in_window=True)
            await asyncio.sleep(0.05)
            continue
        shared.connections.append(conn)
        await lost
        if conn.closing:
            return


async def _sleep_until(deadline_ns: int) -> None:
    delay = (deadline_ns - time.perf_counter_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def _drain(shared: Shared) -> int:
    """Wait (bounded) for in-flight requests after the window; close everything; return how many
    requests were still unanswered."""
    deadline = time.perf_counter_ns() + int(_DRAIN_SECONDS * 1e9)
    while time.perf_counter_ns() < deadline:
        if not any(c.busy and c.transport is not None for c in shared.connections):
            break
        await asyncio.sleep(0.01)
    unfinished = sum(1 for c in shared.connections if c.busy and c.transport is not None)
    for conn in shared.connections:
        conn.close()
    return unfinished


async def generate(args: argparse.Namespace) -> dict[str, object]:
    pool = read_pool(Path(args.pool))
    t0 = time.perf_counter_ns() + int((args.start_at - time.time()) * 1e9)
    if t0 <= time.perf_counter_ns():
        raise SystemExit("loadgen: --start-at is already in the past")
    t1 = t0 + int(args.duration * 1e9)
    shared = Shared(pool, args.offset, t0, t1, args.check, args.writes.encode())
    drivers = [asyncio.create_task(_drive(args.port, shared)) for _ in range(args.connections)]
    await _sleep_until(t0)
    cpu0, wall0 = _cpu_seconds(), time.perf_counter_ns()
    await _sleep_until(t1)
    cpu1, wall1 = _cpu_seconds(), time.perf_counter_ns()
    unfinished = await _drain(shared)
    await asyncio.wait_for(asyncio.gather(*drivers), timeout=_DRAIN_SECONDS)
    Path(args.latencies_out).write_bytes(shared.latencies.tobytes())
    if args.writes:
        Path(f"{args.latencies_out}.writes").write_bytes(shared.write_latencies.tobytes())
    if unfinished:
        shared.errors["unanswered after the window"] += unfinished
    return {
        "ok": len(shared.latencies) + len(shared.write_latencies),
        "window_seconds": (t1 - t0) / 1e9,
        "errors": dict(shared.errors),
        "warmup_ok": shared.warmup_ok,
        "warmup_errors": dict(shared.warmup_errors),
        "error_sample": shared.error_sample,
        "cpu_percent": 100.0 * (cpu1 - cpu0) / max((wall1 - wall0) / 1e9, 1e-9),
        "connections": args.connections,
        "connects": len(shared.connections),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool", required=True, help="file of length-prefixed raw requests")
    parser.add_argument("--connections", type=int, required=True)
    parser.add_argument("--start-at", type=float, required=True, help="window start, unix time")
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--offset", type=int, default=0, help="where in the pool to start")
    parser.add_argument("--latencies-out", required=True)
    parser.add_argument(
        "--writes",
        default="",
        help="requests holding this text are the row's writes: their latencies go to "
        "<latencies-out>.writes",
    )
    parser.add_argument(
        "--check",
        choices=CHECKS,
        default="none",
        help="count as an error a 200 whose ResponseMetadata carries Error (volc; volc-new: "
        "also one whose Result says Exist true), or whose code is not 0 (coze)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    gc.disable()  # a bounded run; nothing here makes reference cycles worth collecting
    result = uvloop.run(generate(args))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
