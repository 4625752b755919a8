"""``convhub db backup FILE``: a consistent copy of a SQLite database taken while it is written."""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from convhub.cli import main
from convhub.domain import directory
from convhub.domain.ports import UnitOfWork
from convhub.store import migrate
from convhub.store.engine import create_database_engine
from convhub.store.tables import accounts, apps
from convhub.store.unit_of_work import run
from tests.support import migrated


def _counts(url: str) -> tuple[int, int, int]:
    """Accounts, apps, and accounts without an app."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            orphans = (
                sa.select(sa.func.count())
                .select_from(accounts)
                .where(~sa.exists().where(apps.c.account_id == accounts.c.id))
            )
            return (
                conn.scalar(sa.select(sa.func.count()).select_from(accounts)) or 0,
                conn.scalar(sa.select(sa.func.count()).select_from(apps)) or 0,
                conn.scalar(orphans) or 0,
            )
    finally:
        engine.dispose()


def _account_with_app(uow: UnitOfWork, name: str) -> None:
    directory.create_account(uow, name, now=1)
    directory.create_app(uow, name, now=1)


def test_a_backup_taken_while_writes_go_on_is_whole_consistent_and_usable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'live.db'}")
    engine = create_database_engine(url, pool_size=2)
    committed = 0
    stop = threading.Event()

    def write() -> None:
        # Each transaction makes an account and its app: a copy holding one without the
        # other would be a torn copy.
        nonlocal committed
        while not stop.is_set():
            name = "w-" + secrets.token_hex(6)
            run(engine, lambda uow, name=name: _account_with_app(uow, name))
            committed += 1

    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while committed < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        before = committed
        target = tmp_path / "copy.db"
        code = main(["db", "backup", str(target), "--database-url", url])
        after = committed
        assert writer.is_alive()  # the writes went on throughout
        while committed < after + 2 and time.monotonic() < deadline + 30:
            time.sleep(0.01)  # and on past the snapshot
    finally:
        stop.set()
        writer.join(timeout=30)
        engine.dispose()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith(f"backed up {url} (schema revision {migrate.head()}) to {target}")
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []

    copy = f"sqlite:///{target}"
    held, held_apps, orphans = _counts(copy)
    assert before <= held <= after + 1  # every commit made before it began, none half made
    assert held_apps == held and orphans == 0
    assert _counts(url)[0] > held  # the original went on past the snapshot
    with sqlite3.connect(target) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()

    assert main(["db", "current", "--database-url", copy]) == 0
    assert capsys.readouterr().out == f"{migrate.head()} (head)\n"
    assert main(["accounts", "list", "--json", "--database-url", copy]) == 0
    assert len(json.loads(capsys.readouterr().out)) == held
    assert main(["accounts", "create", "after-restore", "--database-url", copy]) == 0


def test_a_backup_never_overwrites_and_leaves_nothing_when_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'live.db'}")
    target = tmp_path / "copy.db"
    target.write_text("mine")
    assert main(["db", "backup", str(target), "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert err == f"convhub: {target} exists already: name a new file (a backup never overwrites)\n"
    assert target.read_text() == "mine"

    nowhere = tmp_path / "no" / "copy.db"
    assert main(["db", "backup", str(nowhere), "--database-url", url]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err and not nowhere.parent.exists()
