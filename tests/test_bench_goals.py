"""``benchmarks.goals`` judges a run's rows against issue 10's goals, says by how much each missed
figure misses, and names the goals the run did not measure."""

from __future__ import annotations

import dataclasses

from benchmarks import goals, report, workload
from benchmarks.report import Row


def _row(
    engine: str,
    operation: str,
    rate: float,
    *,
    ratio: float = 0.0,
    p99: float = 10.0,
    workers: int = 1,
    table: int = 10_000,
    ceiling_scaling: float = 1.0,
) -> Row:
    return Row(
        engine=engine, http_server="uvicorn", workers=workers, table=table, operation=operation,
        requests_per_second=rate, p50_ms=p99 / 2, p99_ms=p99, ratio=ratio, ratio_own=ratio,
        scaling=1.0, ceiling_scaling=ceiling_scaling, server_rss_kb=100_000, errors={},
        warmup_errors={}, runs=3,
    )  # fmt: skip


def _verdict(rows: list[Row], starts: str) -> goals.Verdict:
    [found] = [v for v in goals.verdicts(rows) if v.goal.startswith(starts)]
    return found


def test_a_read_meets_its_goal_by_its_rate_and_its_p99_together() -> None:
    rows = [
        _row("sqlite", workload.BATCH_GET, 3_500, ratio=0.12, p99=20.0),
        _row("sqlite", workload.SCAN, 2_900, ratio=0.10, p99=20.0),
        _row("sqlite", workload.MESSAGES, 5_000, ratio=0.15, p99=60.0),
    ]
    verdict = _verdict(rows, "Reads on SQLite")
    assert verdict.met is False
    assert f"{workload.BATCH_GET} 3,500 req/s, ratio 0.120 against 0.091, p99 20.0 ms: met" in (
        verdict.figures
    )
    assert f"{workload.SCAN} 2,900 req/s (3.3% short)" in verdict.figures
    assert "p99 60.0 ms (20% over): missed" in verdict.figures
    only_fast = _verdict(rows[:1], "Reads on SQLite")
    assert only_fast.met is True


def test_both_dialects_message_pages_are_reads_with_the_goal() -> None:
    rows = [
        _row("postgresql", workload.MESSAGES, 1_933, p99=40.0),
        _row("postgresql", workload.COZE_MESSAGE_LIST, 752, p99=117.7),
    ]
    verdict = _verdict(rows, "Reads on PostgreSQL")
    assert verdict.met is False
    assert f"{workload.COZE_MESSAGE_LIST} 752 req/s (49.9% short)" in verdict.figures


def test_reads_on_postgresql_have_a_goal_of_their_own() -> None:
    verdict = _verdict([_row("postgresql", workload.BATCH_GET, 1_600)], "Reads on PostgreSQL")
    assert verdict.met is True  # 1,600 would miss SQLite's 3,000
    assert "≥ 1,500 req/s" in verdict.goal


def test_a_write_is_judged_by_its_ratio_and_says_how_far_short() -> None:
    rows = [
        _row("sqlite", workload.CREATE, 10_650, ratio=0.229, p99=9.4),
        _row("sqlite", workload.MODIFY, 13_630, ratio=0.293, p99=25.0),
        _row("sqlite", workload.COZE_RENAME, 15_190, ratio=0.327, p99=6.4),
        _row("postgresql", workload.CREATE, 8_621, ratio=0.185),
        _row("postgresql", workload.MODIFY, 10_002, ratio=0.215, p99=90.0),
    ]
    sqlite = _verdict(rows, "Writes on SQLite")
    assert sqlite.met is False
    assert f"{workload.CREATE} 0.229 (10,650 req/s), 23.7% short of 0.30, p99 9.4 ms: missed" in (
        sqlite.figures
    )
    assert f"{workload.MODIFY} 0.293 (13,630 req/s), p99 25.0 ms (25% over): missed" in (
        sqlite.figures
    )
    assert f"{workload.COZE_RENAME} 0.327 (15,190 req/s), p99 6.4 ms: met" in sqlite.figures
    postgresql = _verdict(rows, "Writes on PostgreSQL")
    assert postgresql.met is False
    assert "7.5% short of 0.20" in postgresql.figures
    assert f"{workload.MODIFY} 0.215 (10,002 req/s): met" in postgresql.figures  # no p99 goal


def test_two_workers_are_judged_against_the_ceilings_own_gain() -> None:
    rows = [
        _row("postgresql", workload.CREATE, 1_000),
        _row("postgresql", workload.MODIFY, 1_000),
        _row("postgresql", workload.CREATE, 1_400, workers=2, ceiling_scaling=1.25),
        _row("postgresql", workload.MODIFY, 1_200, workers=2, ceiling_scaling=1.25),
    ]
    verdict = _verdict(rows, "PostgreSQL, two workers")
    assert verdict.met is False
    assert f"{workload.CREATE} 1.40x against the ceiling's 1.25x: met" in verdict.figures
    assert f"{workload.MODIFY} 1.20x against the ceiling's 1.25x: missed (4.0% short)" in (
        verdict.figures
    )


def test_four_workers_must_not_fall_below_two() -> None:
    rows = [
        _row("postgresql", workload.CREATE, 1_400, workers=2),
        _row("postgresql", workload.BATCH_GET, 1_000, workers=2),
        _row("postgresql", workload.CREATE, 1_142, workers=4),
        _row("postgresql", workload.BATCH_GET, 1_012, workers=4),
    ]
    verdict = _verdict(rows, "PostgreSQL, four workers")
    assert verdict.met is False
    assert f"{workload.CREATE} -18.4%: missed" in verdict.figures
    assert f"{workload.BATCH_GET} +1.2%: met" in verdict.figures


def test_flatness_is_the_change_farthest_from_the_smallest_table() -> None:
    rows = [
        _row("sqlite", workload.MODIFY, 14_832, p99=6.4, table=10_000),
        _row("sqlite", workload.MODIFY, 11_496, p99=9.9, table=1_000_000),
        _row("sqlite", workload.MODIFY, 12_748, p99=9.5, table=10_000_000),
        _row("sqlite", workload.CREATE, 10_031, p99=10.2, table=10_000),
        _row("sqlite", workload.CREATE, 11_044, p99=8.4, table=10_000_000),
    ]
    verdict = _verdict(rows, "SQLite, one worker, flat")
    assert verdict.met is False
    assert verdict.figures.startswith("tables of 10,000, 1,000,000, 10,000,000")
    assert f"{workload.MODIFY} req/s -22.5%, p99 +54.7%: missed by req/s and p99" in (
        verdict.figures
    )
    assert f"{workload.CREATE} req/s +10.1%, p99 -17.6%: met" in verdict.figures


def test_rows_of_other_workers_and_tables_do_not_stand_in_for_one_worker_at_the_smallest() -> None:
    rows = [
        _row("sqlite", workload.CREATE, 9_000, ratio=0.31, workers=2),
        _row("sqlite", workload.CREATE, 9_000, ratio=0.31, table=1_000_000),
        _row("sqlite", workload.CREATE, 5_000, ratio=0.15, table=10_000),
    ]
    verdict = _verdict(rows, "Writes on SQLite")
    assert verdict.met is False
    assert "0.150" in verdict.figures and "0.310" not in verdict.figures


def test_goals_without_their_rows_are_named_as_not_measured() -> None:
    lines = goals.lines([_row("postgresql", workload.MODIFY, 7_000, ratio=0.2)])
    assert lines[0].startswith("Writes on PostgreSQL, one worker:")
    assert "**met**" in lines[0]
    [unmeasured] = [line for line in lines if line.startswith("Not measured")]
    assert "Reads on SQLite" in unmeasured and "four workers" in unmeasured
    assert "Writes on PostgreSQL" not in unmeasured


def test_a_saved_runs_rows_are_judged_as_the_run_judged_them() -> None:
    rows = [
        _row(report.CEILING, report.ceiling_label("uvicorn"), 40_000, ratio=1.0, table=0),
        _row("postgresql", workload.CREATE, 7_000, ratio=0.175),
    ]
    saved = [dataclasses.asdict(r) for r in rows]
    assert goals.rows_of(saved) == rows
    text = report.markdown(
        {"http_server": "uvicorn", "date": "2026-12-02 04:00 UTC", "nproc": 2, "python": "3.11",
         "uvicorn": "0.54", "loop": "uvloop", "http": "httptools", "connections": 64,
         "duration": 10, "warmup": 2, "workers": [1], "sizes": [10_000], "generators": 1,
         "runs": 3, "code": "git abc"},
        rows, [], [], goals=goals.lines(rows),
    )  # fmt: skip
    assert "**Against the goals of issue 10**" in text
    assert "12.5% short of 0.20" in text
