"""``benchmarks.alternate`` swaps which build runs first each round, and reports medians of each
build's windows: the rate, the server's CPU a request, PostgreSQL's share of a core and p99."""

from __future__ import annotations

from typing import Any

from benchmarks import alternate


def _window(
    operation: str, rate: float, server: float, postgres: float = 0.0, p99: float = 10.0
) -> dict[str, Any]:
    return {
        "engine": "postgresql", "workers": 1, "table": 10_000, "operation": operation,
        "requests_per_second": rate, "server_cpu_percent": server, "p99_ms": p99,
        "other_cpu_percent": {"postgres": postgres} if postgres else {},
    }  # fmt: skip


def test_the_first_build_is_swapped_every_round() -> None:
    assert [alternate.order(i) for i in range(4)] == [
        ("base", "new"), ("new", "base"), ("base", "new"), ("new", "base"),
    ]  # fmt: skip


def test_each_row_is_the_median_of_its_builds_windows() -> None:
    runs = {
        "base": [
            [_window("Create", 1000, 50, 20, 30.0), _window("Modify", 10, 100)],
            [_window("Create", 3000, 90, 22, 12.0)],
            [_window("Create", 2000, 80, 21, 15.0)],
        ],
        "new": [
            [_window("Create", 4000, 80, 16)],
            [_window("Create", 1000, 40, 15), _window("BatchGet", 5, 50)],
            [_window("Create", 2500, 100, 17)],
        ],
    }
    [line] = alternate.summarize(runs)  # Modify and BatchGet were measured by one build only
    assert line.key == ("postgresql", 1, 10_000, "Create")
    assert line.base.requests_per_second == 2000
    assert line.new.requests_per_second == 2500
    # CPU a request: 50% of a core at 1,000/s is 500 µs; 90% at 3,000/s 300; 80% at 2,000/s 400.
    assert round(line.base.server_cpu_us) == 400
    assert round(line.new.server_cpu_us) == 400  # 200, 400 and 400 µs
    assert line.base.database_percent == 21 and line.new.database_percent == 16
    assert line.base.p99_ms == 15.0 and line.new.p99_ms == 10.0
    row = (
        "| postgresql w1 10,000 Create | 2,000 (400 µs; 21%) | 2,500 (400 µs; 16%) | +25.0% "
        "| 15.0 ms | 10.0 ms |"
    )
    assert row in alternate.report([line], "b7bd290")
