"""``benchmarks.pglookups`` sends BatchGet's own two statements for IDs that are in the table, and
counts the PostgreSQL backend's CPU and blocks for them."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from benchmarks import pglookups
from benchmarks.databases import fresh_database, prepare
from benchmarks.prefill import libpq_url, prefill
from benchmarks.workload import BATCH

from tests.support import ENGINES

pytestmark = pytest.mark.skipif(
    "postgresql" not in ENGINES, reason="CONVHUB_TEST_ENGINES leaves PostgreSQL out"
)


def test_both_statements_find_every_id_and_are_counted(tmp_path: Path) -> None:
    results = pglookups.measure_size(8_000, seconds=0.3, warmup=0.1, workdir=tmp_path)
    assert [m.statement for m in results] == ["versions", "rows"]
    for m in results:
        assert m.size == 8_000
        assert m.queries_per_second > 0
        assert m.backend_cpu_us > 0
        # Each of the 100 IDs is at least two blocks: of the index and the table, or (the
        # versions, from the key alone) the index's root and leaf.
        assert m.blocks_hit + m.blocks_read >= 2 * BATCH
    report = pglookups.report(results)
    assert "| 8,000 | versions |" in report and "| 8,000 | rows |" in report


def test_the_prefill_leaves_its_tables_as_vacuum_would(tmp_path: Path) -> None:
    """Every page all-visible, as on a table autovacuum has been through: what lets the versions
    come from the key alone (with asynchronous commits, the prefill's VACUUM marked none)."""
    with fresh_database("postgresql", tmp_path) as url:
        prefill(url, prepare(url), 8_000, pglookups.COZE_TARGETS)
        with psycopg.connect(libpq_url(url)) as conn:
            found = conn.execute(
                "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'conversations'"
            ).fetchone()
    assert found is not None
    pages, visible = found
    assert pages > 0
    assert visible == pages


def test_the_statements_are_the_ones_the_server_sends() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    versions = pglookups._sql("versions", url)
    assert "SELECT conversations.id, conversations.version" in versions
    assert "= ANY (CAST(%(ids)s AS BIGINT[]))" in versions
    assert "conversations.name" in pglookups._sql("rows", url)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--sizes", "abc"], "not a comma-separated list"),
        (["--sizes", "100"], "--sizes takes table sizes from 8,000"),
        (["--seconds", "0"], "need --seconds above 0"),
    ],
)
def test_a_mistyped_option_is_one_line_before_anything_runs(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        pglookups.main(argv)
    assert stopped.value.code == 2
    assert said in capsys.readouterr().err
