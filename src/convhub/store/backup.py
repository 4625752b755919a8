"""``convhub db backup``: a consistent copy of a SQLite database, safe while the server writes."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from convhub.errors import ConfigError


def backup_sqlite(source: Path, target: Path) -> int:
    """Copy the database at ``source`` to ``target``, a file that must not exist yet, and return
    its size. SQLite's online backup API copies every page in one step inside one read
    transaction: a snapshot of the last commit, and in WAL mode the server's writes go on
    meanwhile. The copy is written beside ``target``, checked, synced, and only then given its
    name, so ``target`` is either complete or absent."""
    if target.exists():
        raise ConfigError(f"{target} exists already: name a new file (a backup never overwrites)")
    folder = target.resolve().parent
    if not folder.is_dir():
        raise ConfigError(f"cannot write {target}: directory {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"cannot write {target}: directory {folder} is not writable")
    partial = folder / f".{target.name}.{os.getpid()}.partial"
    # mode=rw: an existing file only, never a new empty one.
    original = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
    try:
        copy = sqlite3.connect(partial)
        try:
            original.backup(copy)
            (verdict,) = copy.execute("PRAGMA quick_check").fetchone()
        finally:
            copy.close()
        if verdict != "ok":
            raise ConfigError(f"the copy of {source} failed its check ({verdict}); nothing written")
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.link(partial, target)  # fails rather than overwrite a file made meanwhile
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return target.stat().st_size
    finally:
        original.close()
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
