"""Alembic, driven from code: ``convhub db …`` and the automatic upgrade at ``serve``."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

_SCRIPTS = Path(__file__).with_name("migrations")


class Migration(NamedTuple):
    revision: str
    summary: str


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    _known(revision)
    command.upgrade(_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    _known(revision)
    command.downgrade(_config(url), revision)


def _known(revision: str) -> None:
    """Refuse a revision that names no migration before connecting (a connection to a SQLite
    URL creates its file). Relative (``-1``, ``+2``) and symbolic ones are left to Alembic."""
    if revision in ("head", "heads", "base") or revision[:1] in ("+", "-") or ":" in revision:
        return
    ScriptDirectory(str(_SCRIPTS)).get_revision(revision)  # ResolutionError when unknown


def history() -> list[Migration]:
    """Every migration, oldest first."""
    scripts = ScriptDirectory(str(_SCRIPTS))
    found = [
        Migration(script.revision, (script.doc or "").strip().splitlines()[0])
        for script in scripts.walk_revisions()
    ]
    return found[::-1]


def head() -> str:
    return history()[-1].revision


def current(engine: Engine) -> str | None:
    """The revision the database is at; None when it has no convhub schema at all."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
