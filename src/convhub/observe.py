"""What every request leaves behind: Prometheus metrics and one log line.

Each dialect returns an ``Exchange`` (``dialects/asgi.py``) from its single exit; ``Observer.wrap``
times the dialect and turns the exchange into the metrics and the log line. The store and the
rate limiter report through callbacks the composition root hands them. Nothing else imports
prometheus_client.

With several worker processes (``serve --workers N``) the metrics go through prometheus_client's
multiprocess mode: ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh private directory
before the workers start (``multiprocess_directory``), every worker writes its values there, and
``/metrics``, whichever worker answers it, adds them up. In one process (``--workers 1``, tests)
the values live in the observer's own registry.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)

from convhub.dialects.asgi import Dialect, Exchange, Receive, Scope, Send
from convhub.errors import ErrorCode

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
ACCESS_LOGGER = "convhub.access"
LOG_FORMATS = ("text", "json")
# Not uvicorn's "trace": it logs every request's headers, Authorization included.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_RATE_LIMITED = ErrorCode.RATE_LIMITED.value
_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+_(\d+)\.db")

Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

# The *_created series say when each series began; they double the output and nobody reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Observer:
    """The metrics of one process, and its request log."""

    def __init__(self) -> None:
        # Multiprocess mode is chosen by prometheus_client when it is first imported.
        self.multiprocess = bool(getattr(values.ValueClass, "_multiprocess", False))
        self._registry = registry = CollectorRegistry()
        self._requests = Counter(
            "convhub_requests",
            "Requests answered, by dialect, action and outcome (ok, or the error code)",
            ("dialect", "action", "outcome"),
            registry=registry,
        )
        self._latency = Histogram(
            "convhub_request_duration_seconds",
            "Time from the request's arrival at its dialect to the end of the answer",
            ("dialect", "action"),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._rate_limited = Counter(
            "convhub_rate_limited",
            "Requests refused by a per-account rate limit",
            ("dialect", "action"),
            registry=registry,
        )
        self._fail_open = Counter(
            "convhub_redis_fail_open",
            "Rate-limit checks counted in the process because Redis was unreachable",
            registry=registry,
        )
        self._queue_depth = Gauge(
            "convhub_writer_queue_depth",
            "Writes waiting for the database writer, as it finished its last batch",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._batch_size = Histogram(
            "convhub_writer_batch_size",
            "Writes committed together by the database writer (group commit)",
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self._listening = Gauge(
            "convhub_listening_processes",
            "Processes that hear the other processes' changes of conversations (PostgreSQL)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._database_errors = Counter(
            "convhub_database_errors",
            "Reads and writes that failed on the database itself (unreachable, dropped, ...)",
            ("operation",),
            registry=registry,
        )
        # labels() takes a lock and builds a key; each series is looked up once.
        self._counted: dict[tuple[str, str, str], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}
        self._log = logging.getLogger(ACCESS_LOGGER)

    # --- requests ---------------------------------------------------------------------------------

    def wrap(self, dialect: Dialect) -> Asgi:
        """The dialect as an ASGI app that observes every request it answers."""

        async def observed(scope: Scope, receive: Receive, send: Send) -> None:
            started = time.perf_counter()
            exchange = await dialect(scope, receive, send)
            self.observe(exchange, time.perf_counter() - started)

        return observed

    def observe(self, exchange: Exchange, seconds: float) -> None:
        key = (exchange.dialect, exchange.action, exchange.outcome)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self._requests.labels(*key)
        counter.inc()
        timer = self._timed.get(key[:2])
        if timer is None:
            timer = self._timed[key[:2]] = self._latency.labels(*key[:2])
        timer.observe(seconds)
        if exchange.outcome == _RATE_LIMITED:
            self._rate_limited.labels(*key[:2]).inc()
        if self._log.isEnabledFor(logging.INFO):
            milliseconds = round(seconds * 1000, 3)
            self._log.info(
                "%s %s %d %s %.1fms account=%s request_id=%s",
                exchange.dialect,
                exchange.action,
                exchange.status,
                exchange.outcome,
                milliseconds,
                "-" if exchange.account is None else exchange.account,
                exchange.request_id,
                extra={
                    "request": {
                        "request_id": exchange.request_id,
                        "dialect": exchange.dialect,
                        "action": exchange.action,
                        "account": exchange.account,
                        "outcome": exchange.outcome,
                        "status": exchange.status,
                        "latency_ms": milliseconds,
                    }
                },
            )

    # --- what the store and the limiter report ----------------------------------------------------

    def batch(self, size: int, waiting: int) -> None:
        self._batch_size.observe(size)
        self._queue_depth.set(waiting)

    def database_error(self, operation: str) -> None:
        self._database_errors.labels(operation).inc()

    def listening(self, hearing: bool) -> None:
        self._listening.set(1 if hearing else 0)

    def redis_fail_open(self) -> None:
        self._fail_open.inc()

    # --- exposition -------------------------------------------------------------------------------

    async def serve_metrics(self, send: Send) -> None:
        body = self.exposition()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", CONTENT_TYPE_LATEST.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def exposition(self) -> bytes:
        """The Prometheus text format: this process's values, or every worker's added up."""
        if not self.multiprocess:
            return generate_latest(self._registry)
        directory = os.environ[MULTIPROCESS_ENV]
        _forget_dead_workers(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def close(self) -> None:
        """This process stops: its gauges stop counting (its counters keep their totals)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _forget_dead_workers(directory: str) -> None:
    # A worker that was killed never said goodbye: its gauges would count on forever.
    for path in Path(directory).glob("gauge_live*.db"):
        found = _LIVE_GAUGE_FILE.fullmatch(path.name)
        if found is None:
            continue
        pid = int(found.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, someone else's


@contextmanager
def multiprocess_directory() -> Iterator[str]:
    """A fresh private ``PROMETHEUS_MULTIPROC_DIR`` for the worker processes about to start
    (they inherit the environment); removed when they have stopped."""
    path = tempfile.mkdtemp(prefix="convhub-metrics-")
    os.environ[MULTIPROCESS_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROCESS_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


# --- logs -----------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a request's line carries its fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
        }
        fields = getattr(record, "request", None)
        if isinstance(fields, dict):
            entry["message"] = "request"
            entry.update(fields)
        else:
            entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def logging_config(*, log_format: str, level: str, access_log: bool) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of ``serve`` (uvicorn applies it in every worker).

    convhub's and uvicorn's loggers log at ``level``; everything else (SQLAlchemy, drivers) only
    warnings, so that no debug output of a library ever shows a statement's parameters. The request
    lines (``convhub.access``) go to stdout, the rest to stderr; uvicorn's own access log is off.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"the log format is text or json, not {log_format!r}")
    if level not in LOG_LEVELS:
        raise ValueError(f"the log level is one of {', '.join(LOG_LEVELS)}, not {level!r}")
    formatter: dict[str, Any] = (
        {"()": "convhub.observe.JsonFormatter"}
        if log_format == "json"
        else {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"}
    )
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"convhub": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "convhub",
                "stream": "ext://sys.stderr",
            },
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "convhub",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "convhub": {"handlers": ["stderr"], "level": upper, "propagate": False},
            ACCESS_LOGGER: {
                "handlers": ["stdout"],
                "level": upper if access_log else "WARNING",
                "propagate": False,
            },
        },
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
