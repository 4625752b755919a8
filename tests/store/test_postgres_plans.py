"""PostgreSQL's own plans for the statements whose speed rests on an index: what the planner
chooses for the server's statements, on a table VACUUM has been through."""

from __future__ import annotations

from typing import Any

from convhub.domain.models import Conversation, ConversationType
from convhub.store.engine import create_database_engine
from convhub.store.repositories.conversations import _VERSIONS, MAPPER
from convhub.store.tables import conversations
from tests.support import required_postgres

_ROWS = 20_000


def _row(n: int) -> dict[str, Any]:
    """A stored group, as the repository writes one, at version ``n % 7``."""
    group = Conversation(
        id=10**17 + n, app_id=1, inbox_type=0, type=ConversationType.GROUP, owner="u1",
        creator="u1", other=None, create_time=1, modify_time=1, name=f"group {n}",
    )  # fmt: skip
    return {**MAPPER.dump(group), "version": n % 7}


def test_the_versions_of_kept_conversations_come_from_the_index_alone() -> None:
    """BatchGet's question (the versions of 100 IDs) is answered from its primary key without a
    visit to the table: at 10 million rows the table's pages were half of PostgreSQL's time."""
    with required_postgres() as url:
        engine = create_database_engine(url, pool_size=1)
        try:
            with engine.begin() as conn:
                conn.execute(conversations.insert(), [_row(n) for n in range(_ROWS)])
            with engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("VACUUM ANALYZE conversations")
                wanted = list(range(0, _ROWS, _ROWS // 100))
                statement, params = _VERSIONS.bind("postgresql", [10**17 + n for n in wanted])
                sql = str(statement.compile(dialect=conn.dialect))  # type: ignore[attr-defined]
                explained = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
                plan = explained.scalar_one()[0]["Plan"]
                answered = conn.execute(statement, params).all()
        finally:
            engine.dispose()
    assert (plan["Node Type"], plan["Index Name"]) == (
        "Index Only Scan",
        "pk_conversations",
    )
    assert plan["Heap Fetches"] == 0
    assert sorted(answered) == [(10**17 + n, n % 7) for n in wanted]
