"""SQLite's checkpoints run on a thread of their own, shortly after the writer commits: what a
batch wrote reaches the database file itself while the WAL is far from the pages at which the
writer would checkpoint, and closing the database stops that thread. The writer's own checkpoint
comes due at 10,000 pages, not SQLite's 1,000."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from convhub.domain.ports import UnitOfWork
from convhub.ids import SnowflakeIds
from convhub.store.database import GroupCommitDatabase
from convhub.store.engine import SQLITE_AUTOCHECKPOINT_PAGES, create_database_engine
from tests.support import group_of, migrated

APP = 515_151


def _in_the_file_itself(path: Path) -> int:
    """The app's conversations in the database file, the WAL left unread (``immutable``)."""
    try:
        with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM conversations WHERE app_id = ?", (APP,)
            ).fetchone()
            return int(count)
    except sqlite3.DatabaseError:  # a page read while the checkpoint wrote it
        return -1


def test_a_commit_reaches_the_database_file_without_the_writer_checkpointing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "convhub.db"
    migrated(f"sqlite:///{path}")
    engine = create_database_engine(f"sqlite:///{path}", pool_size=2)
    db = GroupCommitDatabase(engine)
    ids = SnowflakeIds(1001)
    made = [ids.next_id() for _ in range(300)]

    def work(uow: UnitOfWork) -> None:
        for conversation_id in made:
            uow.conversations.add(group_of(conversation_id, APP), None)

    try:
        asyncio.run(db.write(work))
        wal_pages = (path.parent / (path.name + "-wal")).stat().st_size // 4096
        assert 0 < wal_pages < 1000  # the writer's own checkpoint has not come due
        deadline = time.monotonic() + 10
        while _in_the_file_itself(path) != len(made):
            assert time.monotonic() < deadline, "the commit never reached the database file"
            time.sleep(0.01)
    finally:
        db.close()
    assert not [t for t in threading.enumerate() if t.name == "convhub-checkpointer"]


def test_a_commit_checkpoints_only_past_10000_pages_of_wal(tmp_path: Path) -> None:
    """Commits of 1,500 pages in all, 300 at a time, with no checkpointer: with SQLite's 1,000
    the fourth would have checkpointed and the fifth begun the WAL again."""
    path = tmp_path / "convhub.db"
    url = migrated(f"sqlite:///{path}")
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE filler (page BLOB)")
            conn.commit()
            for _ in range(5):
                with conn.begin():
                    conn.exec_driver_sql(
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                        " WHERE i < 300) INSERT INTO filler SELECT zeroblob(3000) FROM n"
                    )
            # Asked while the writer's connection is open: the last one to close checkpoints.
            check = sqlite3.connect(path)
            try:
                _busy, wal_frames, _copied = check.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
            finally:
                check.close()
    finally:
        engine.dispose()
    assert 1_500 <= wal_frames < SQLITE_AUTOCHECKPOINT_PAGES
