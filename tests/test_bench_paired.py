"""``--paired-ceiling``: each run of a row is measured just after a window of the ceiling, and the
row's ratio is the median of its runs' ratios to those, not its median rate over the ceiling
measured once at the start."""

from __future__ import annotations

from benchmarks import options
from benchmarks.lines import paired_lines
from benchmarks.measure import Measurement
from benchmarks.report import CEILING, ceiling_label, rows


def _window(engine: str, operation: str, run: int, rate: float, paired: float = 0.0) -> Measurement:
    return Measurement(
        engine=engine, operation=operation, run=run, http_server="uvicorn", workers=1,
        table=0 if engine == CEILING else 10_000, started_at="", requests_per_second=rate,
        p50_ms=1.0, p99_ms=2.0, ok=1, window_seconds=1.0, paired_ceiling_rps=paired,
    )  # fmt: skip


def _ceiling(run: int, rate: float) -> Measurement:
    return _window(CEILING, ceiling_label("uvicorn"), run, rate)


def test_a_paired_rows_ratio_is_the_median_of_its_runs_ratios() -> None:
    # The machine slowed down between the ceiling's windows at the start and the row's: the
    # ceiling measured then says 0.15, the ceilings beside each run 0.25, 0.20 and 0.30.
    windows = [
        _ceiling(1, 40_000), _ceiling(2, 40_000), _ceiling(3, 40_000),
        _window("sqlite", "Create", 1, 5_000, paired=20_000),
        _window("sqlite", "Create", 2, 6_000, paired=30_000),
        _window("sqlite", "Create", 3, 7_500, paired=25_000),
    ]  # fmt: skip
    [ceiling, create] = rows(windows)
    assert ceiling.ratio == 1.0
    assert create.requests_per_second == 6_000
    assert create.ratio == 0.25  # not 6,000 / 40,000


def test_a_row_with_a_run_not_paired_keeps_the_ratio_to_the_first_ceiling() -> None:
    windows = [
        _ceiling(1, 40_000),
        _window("sqlite", "Create", 1, 6_000, paired=20_000),
        _window("sqlite", "Create", 2, 6_000),
    ]
    [_ceiling_row, create] = rows(windows)
    assert create.ratio == 0.15


def test_the_paired_ceilings_are_summed_up_by_worker_count() -> None:
    paired = [_ceiling(1, 30_000), _ceiling(2, 34_000), _ceiling(3, 25_000)]
    [line] = paired_lines(paired)
    assert "1 worker(s): 3 windows, median 30,000 req/s, from 25,000 to 34,000" in line
    assert paired_lines([]) == []


def test_paired_ceilings_are_asked_for() -> None:
    assert options.parse_args(["--paired-ceiling"], None).paired_ceiling is True
    assert options.parse_args([], None).paired_ceiling is False
