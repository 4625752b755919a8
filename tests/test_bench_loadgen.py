"""The load generator against a small server whose answers to some requests are slow."""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.lines import brief, extra_lines
from benchmarks.measure import Load, Measurement, Where, measure
from benchmarks.report import where

from tests.support import wait_until_gone

SLOW_SECONDS = 0.03
_BODY = b"{}"
_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n" + _BODY


class _SlowWrites(asyncio.Protocol):
    """Answers every request at once, except a ``POST /write`` after SLOW_SECONDS."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            delay = SLOW_SECONDS if head.startswith(b"POST /write ") else 0.0
            asyncio.get_running_loop().call_later(delay, self._answer)

    def _answer(self) -> None:
        assert isinstance(self.transport, asyncio.Transport)
        if not self.transport.is_closing():
            self.transport.write(_ANSWER)


@pytest.fixture
def slow_writes() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_SlowWrites, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.close()
        # The next test counts this process's context switches: it must not lose this thread's.
        wait_until_gone(thread)


def _request(target: str) -> bytes:
    return f"POST {target} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n".encode()


def test_a_mixed_rows_writes_are_timed_apart_from_its_reads(
    slow_writes: int, tmp_path: Path
) -> None:
    """One request in ten is a slow write: the row's p50 is the reads', its p99 the writes',
    and apart, the writes' p50 is theirs (at least the server's delay) and the reads' p99 is
    well below it."""
    measured = _measure(slow_writes, tmp_path, seconds=1.5, writes=b"POST /write ")
    assert measured.ok > 100 and not measured.errors
    assert measured.writes_p50_ms >= SLOW_SECONDS * 1000
    assert measured.reads_p99_ms < SLOW_SECONDS * 1000 / 2
    assert measured.p99_ms >= SLOW_SECONDS * 1000  # the row's own p99 is the writes'
    assert "(writes p50 " in brief(measured)
    assert _summary(measured) == [
        "Reads beside writes, each kind's latency apart, medians (p50/p99 ms): "
        f"{where(measured)} writes {measured.writes_p50_ms:.1f}/{measured.writes_p99_ms:.1f}, "
        f"reads {measured.reads_p50_ms:.1f}/{measured.reads_p99_ms:.1f}"
    ]


def test_a_row_without_writes_is_not_split(slow_writes: int, tmp_path: Path) -> None:
    """Without ``writes`` every latency is the row's and no kind is reported apart, even where
    the pool holds the slow requests."""
    measured = _measure(slow_writes, tmp_path, seconds=1.0)
    assert measured.ok > 50 and measured.p99_ms >= SLOW_SECONDS * 1000
    assert (measured.writes_p50_ms, measured.reads_p99_ms) == (0.0, 0.0)
    assert "writes p50" not in brief(measured)
    assert _summary(measured) == []


def _measure(port: int, workdir: Path, *, seconds: float, writes: bytes = b"") -> Measurement:
    """A window of 4 connections over a pool in which one request in ten is a slow write."""
    pool = [_request("/write") if i == 4 else _request("/read") for i in range(10)]
    return measure(
        where=Where("sqlite", "uvicorn", 1, 0),
        operation="mixed",
        run=1,
        port=port,
        pool=pool,
        load=Load(connections=4, duration=seconds, warmup=0.3),
        server_pid=None,
        workdir=workdir,
        check="none",
        writes=writes,
    )


def _summary(measured: Measurement) -> list[str]:
    """The report's line of reads and writes apart, if it has one."""
    args = argparse.Namespace(conversations=1, modify_targets=1, coze_targets=1)
    check = {"requests_per_second": 1.0, "generator_cpu_percent": [1.0]}
    lines = extra_lines({**check, "null_server_cpu_percent": 1.0}, 1.0, [measured], args, [])
    return [line for line in lines if line.startswith("Reads beside writes")]


def _window(run: int, threads: dict[str, float]) -> Measurement:
    return Measurement(
        engine="sqlite",
        operation="Create",
        run=run,
        http_server="uvicorn",
        workers=1,
        table=10_000,
        started_at="",
        requests_per_second=1.0,
        p50_ms=1.0,
        p99_ms=1.0,
        ok=1,
        window_seconds=1.0,
        generator_cpu_percent=[1.0],
        server_thread_cpu_percent=threads,
    )


def test_the_servers_cpu_by_thread_is_the_median_of_each_threads_share() -> None:
    windows = [
        _window(1, {"main": 60.0, "convhub-writer": 30.0, "convhub-lease": 0.2}),
        _window(2, {"main": 64.0, "convhub-writer": 36.0, "convhub-checkpo": 3.0}),
        _window(3, {"main": 66.0, "convhub-writer": 33.0, "convhub-checkpo": 2.0}),
    ]
    args = argparse.Namespace(conversations=1, modify_targets=1, coze_targets=1)
    check = {"requests_per_second": 1.0, "generator_cpu_percent": [1.0]}
    lines = extra_lines({**check, "null_server_cpu_percent": 1.0}, 1.0, windows, args, [])
    found = [line for line in lines if line.startswith("The server's CPU by thread")]
    assert len(found) == 1
    # Medians over the three windows (a thread absent from one counts 0 there), most first;
    # the lease thread, under 1%, is left out.
    assert found[0].endswith(f"{where(windows[0])} main 64 / convhub-writer 33 / convhub-checkpo 2")
    assert "convhub-lease" not in found[0]
