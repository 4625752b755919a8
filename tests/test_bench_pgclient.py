"""``benchmarks.pgclient`` runs the writer's shape of transaction both ways, each to its commit,
and reports the client's CPU of each."""

from __future__ import annotations

import psycopg
import pytest
from benchmarks import pgclient
from benchmarks.prefill import libpq_url
from psycopg import pq

from tests.postgres import POSTGRES_ADMIN_URL
from tests.support import ENGINES

pytestmark = pytest.mark.skipif(
    "postgresql" not in ENGINES, reason="CONVHUB_TEST_ENGINES leaves PostgreSQL out"
)


def test_the_writers_way_answers_every_statement_and_commits() -> None:
    with psycopg.connect(libpq_url(POSTGRES_ADMIN_URL)) as conn:
        pgclient._through_libpq(conn, 5)  # raises unless the 5 statements were answered
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE  # committed
        assert conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
        pgclient._through_libpq(conn, 1)  # and the connection takes the next one


def test_both_ways_are_measured_for_each_count() -> None:
    results = pgclient.measure([1, 3], 20, POSTGRES_ADMIN_URL)
    assert [m.statements for m in results] == [1, 3]
    assert all(m.psycopg_us > 0 and m.libpq_us > 0 for m in results)
    report = pgclient.report(results)
    assert report.count("\n") == 3 and "| 3 | " in report


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--statements", "0"], "--statements takes counts of 1 or more"),
        (["--statements", "x"], "not a comma-separated list"),
        (["--transactions", "0"], "--transactions takes 1 or more"),
    ],
)
def test_a_mistyped_option_is_one_line_before_anything_runs(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        pgclient.main(argv)
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err
