"""Tables of a given size before any window: conversations and their owners' participant rows,
written in bulk through the store's own tables and shaped like the rows the API writes.

Row ``i`` of ``size`` belongs to app slot ``i % APPS``: slot 0 is the tenant's main app (Modify
and BatchGet draw on it), slot 1 its Coze app (Coze conversations of bot ``COZE_BOT`` on the API
connector, ``coze_targets`` of them, evenly spread, by the token's user: the Coze rename row
renames those), the other slots are apps of their own. Within a slot, row ``k = i // APPS`` is
a group owned by user ``OWNER_BASE + k % owners``, with ``owners`` so many that nobody owns more
than ``GROUPS_PER_OWNER`` (the limit is 500 groups per user and app).

IDs are snowflakes (``convhub.ids``) minted by node ``PREFILL_NODE``, one every ``step`` ms over
the year that ended a day before the run: the server mints its own with the current time, so the
two never meet, and the table's ID order is its age order, as in a real one. A created group is
one ``conversations`` row and its owner's ``participants`` row (no other per-user rows), each
built from the domain objects the service builds and dumped by the store's own mappers.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from benchmarks.databases import TOKEN_USER, Tenant
from benchmarks.workload import COZE_BOT
from convhub.domain import directory
from convhub.domain.conversations import counts_toward_group_limit
from convhub.domain.models import Conversation, ConversationType, Participant, Role
from convhub.domain.ports import UnitOfWork
from convhub.ids import EPOCH_MS, NODE_BITS, SEQUENCE_BITS
from convhub.store.engine import create_database_engine
from convhub.store.repositories.conversations import MAPPER as CONVERSATIONS
from convhub.store.repositories.participants import MAPPER as PARTICIPANTS
from convhub.store.tables import conversations, participants
from convhub.store.unit_of_work import run

APPS = 8
MAIN_SLOT = 0
COZE_SLOT = 1
OWNER_BASE = 1_000_000_000  # far from every user the set-up and the pools use
GROUPS_PER_OWNER = 50
PREFILL_NODE = 1023  # nodes are leased from 0 upwards; any node would do (the times differ)
SPAN_MS = 365 * 86_400_000
_DAY_MS = 86_400_000
_API_CONNECTOR = "1024"
_CHUNK = 100_000  # rows per transaction
# Disk taken per prefilled conversation (its row, its owner's participant row, their indexes),
# measured at 1M rows: SQLite ~330 bytes, PostgreSQL ~520; the check asks for twice that.
BYTES_PER_CONVERSATION = 1_200
_DISK_MARGIN = 2 << 30


@dataclass(frozen=True, slots=True)
class Layout:
    """Where each prefilled row is, so that pools can name rows without reading them back."""

    size: int
    apps: tuple[int, ...]  # app ID of each slot
    first_ms: int  # row 0's milliseconds since convhub's epoch
    step_ms: int
    owners: int  # per slot
    coze_stride: int
    coze_targets: int

    def id_of(self, row: int) -> int:
        millis = self.first_ms + row * self.step_ms
        return (millis << (NODE_BITS + SEQUENCE_BITS)) | (PREFILL_NODE << SEQUENCE_BITS)

    def seconds_of(self, row: int) -> int:
        return (EPOCH_MS + self.first_ms + row * self.step_ms) // 1000

    def slot_rows(self, slot: int) -> int:
        return len(range(slot, self.size, len(self.apps)))

    def slot_ids(self, slot: int) -> SlotIds:
        return SlotIds(self, slot)

    def spread(self, slot: int, count: int) -> list[int]:
        """IDs of ``count`` rows of a slot, evenly spread from its oldest to its newest."""
        ids = self.slot_ids(slot)
        return [ids[j * len(ids) // count] for j in range(count)]

    def coze_user(self, k: int) -> str:
        if k % self.coze_stride == 0 and k // self.coze_stride < self.coze_targets:
            return TOKEN_USER
        return f"coze-user-{k % self.owners}"

    def coze_ids(self) -> list[str]:
        """The Coze conversations of the token's user, oldest first."""
        apps = len(self.apps)
        return [
            str(self.id_of(j * self.coze_stride * apps + COZE_SLOT))
            for j in range(self.coze_targets)
        ]


class SlotIds(Sequence[int]):
    """The IDs of one slot's rows, computed on demand (10M rows need no list)."""

    def __init__(self, layout: Layout, slot: int) -> None:
        self._layout = layout
        self._slot = slot
        self._len = layout.slot_rows(slot)

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._len))]
        if not -self._len <= index < self._len:
            raise IndexError(index)
        k = index % self._len
        return self._layout.id_of(k * len(self._layout.apps) + self._slot)


def layout(size: int, tenant: Tenant, extra_apps: Sequence[int], coze_targets: int) -> Layout:
    apps = (tenant.app_id, tenant.coze_app_id, *extra_apps)
    per_slot = -(-size // len(apps))
    now_ms = time.time_ns() // 1_000_000 - EPOCH_MS
    return Layout(
        size=size,
        apps=apps,
        first_ms=now_ms - _DAY_MS - SPAN_MS,
        step_ms=max(1, SPAN_MS // max(size, 1)),
        owners=max(1, -(-per_slot // GROUPS_PER_OWNER)),
        coze_stride=max(1, per_slot // max(coze_targets, 1)),
        coze_targets=coze_targets,
    )


def minimum_size(*targets: int) -> int:
    """The smallest table whose slots hold ``max(targets)`` rows each."""
    return APPS * max(targets)


def _templates() -> tuple[list[Any], list[Any], list[Any], list[Any]]:
    """One group's and one Coze conversation's rows (and their owners' participant rows) as the
    service builds them (``ConversationService.create_conversation``), in table column order."""
    group = Conversation(
        id=1, app_id=1, inbox_type=0, type=ConversationType.GROUP, owner="1", creator="1",
        other=None, create_time=1, modify_time=1, name="prefilled", member_count=1,
        section_id=2, last_join_seq=1, activity_key=1,
    )  # fmt: skip
    coze = Conversation(
        id=1, app_id=1, inbox_type=0, type=ConversationType.GROUP, owner="u", creator="u",
        other=None, create_time=1, modify_time=1, name="prefilled coze", member_count=1,
        bot_id=COZE_BOT, connector_id=_API_CONNECTOR, section_id=2, last_join_seq=1,
        activity_key=1,
    )  # fmt: skip
    rows = []
    for conversation in (group, coze):
        values = {**CONVERSATIONS.dump(conversation), "idempotency_key": None, "version": 0}
        member = Participant(
            1, "1", Role.OWNER, "1", 1, app_id=1, join_seq=1,
            in_group_limit=counts_toward_group_limit(conversation),
        )  # fmt: skip
        rows.append(_in_order(conversations, values))
        rows.append(_in_order(participants, PARTICIPANTS.dump(member)))
    return rows[0], rows[1], rows[2], rows[3]


def _in_order(table: sa.Table, values: dict[str, Any]) -> list[Any]:
    missing = set(table.c.keys()) ^ set(values)
    if missing:
        raise RuntimeError(f"{table.name}: the mapper and the table differ on {sorted(missing)}")
    return [values[name] for name in table.c.keys()]  # noqa: SIM118 (a column collection)


def _chunk(layout: Layout, start: int, stop: int) -> tuple[list[tuple[Any, ...]], ...]:
    group, group_owner, coze, coze_owner = _templates()
    cc, pc = conversations.c.keys(), participants.c.keys()
    c_id, c_app, c_name = cc.index("id"), cc.index("app_id"), cc.index("name")
    c_owner, c_creator = cc.index("owner_user"), cc.index("creator_user")
    c_created, c_modified = cc.index("create_time"), cc.index("modify_time")
    c_section, c_activity = cc.index("section_id"), cc.index("activity_key")
    p_conv, p_user, p_op = pc.index("conversation_id"), pc.index("user_id"), pc.index("operator")
    p_created, p_app = pc.index("create_time"), pc.index("app_id")
    apps = layout.apps
    count = len(apps)
    made: list[tuple[Any, ...]] = []
    owners: list[tuple[Any, ...]] = []
    for i in range(start, stop):
        slot, k = i % count, i // count
        cid = layout.id_of(i)
        seconds = layout.seconds_of(i)
        if slot == COZE_SLOT:
            user = layout.coze_user(k)
            row, member = coze.copy(), coze_owner.copy()
            row[c_name] = f"prefilled coze {k}"
        else:
            user = str(OWNER_BASE + k % layout.owners)
            row, member = group.copy(), group_owner.copy()
            row[c_name] = f"prefilled group {k}"
        row[c_id] = row[c_activity] = cid
        row[c_section] = cid + 1  # the service mints it right after the conversation's ID
        row[c_app] = member[p_app] = apps[slot]
        row[c_owner] = row[c_creator] = member[p_user] = member[p_op] = user
        row[c_created] = row[c_modified] = member[p_created] = seconds
        member[p_conv] = cid
        made.append(tuple(row))
        owners.append(tuple(member))
    return made, owners


def _chunks(layout: Layout) -> Iterator[tuple[list[tuple[Any, ...]], ...]]:
    for start in range(0, layout.size, _CHUNK):
        yield _chunk(layout, start, min(start + _CHUNK, layout.size))


def _extra_apps(url: str, count: int) -> list[int]:
    now = int(time.time())

    def work(uow: UnitOfWork) -> list[int]:
        return [
            directory.create_app(uow, "bench", now=now, name=f"bench-prefill-{n}")
            for n in range(count)
        ]

    engine = create_database_engine(url, pool_size=1)
    try:
        return run(engine, work)
    finally:
        engine.dispose()


def _fill_sqlite(url: str, layout: Layout) -> None:
    """Executemany of the tables' own compiled INSERTs, 100k rows a transaction, with
    ``synchronous=OFF`` on this connection only (the server's stay FULL)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)

    @sa.event.listens_for(engine, "connect")
    def _fast(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("PRAGMA cache_size=-524288")  # 512 MiB of page cache for the indexes
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    add_conversation = str(conversations.insert().compile(dialect=engine.dialect))
    add_participant = str(participants.insert().compile(dialect=engine.dialect))
    try:
        with engine.connect() as conn:
            for made, owners in _chunks(layout):
                with conn.begin():
                    conn.exec_driver_sql(add_conversation, made)
                    conn.exec_driver_sql(add_participant, owners)
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()


def libpq_url(url: str) -> str:
    """``url`` as libpq (psycopg.connect) takes it: without SQLAlchemy's driver name."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _fill_postgresql(url: str, layout: Layout) -> None:
    """``COPY ... FROM STDIN`` through psycopg, 100k rows a transaction, then ``VACUUM
    ANALYZE`` (what autovacuum would have done to a table this old).

    Commits are synchronous: VACUUM marks a page all-visible (what an index-only scan needs)
    only once its rows' commits are flushed, and an asynchronous commit's may not be yet."""
    copy_conversations = f"COPY conversations ({', '.join(conversations.c.keys())}) FROM STDIN"
    copy_participants = f"COPY participants ({', '.join(participants.c.keys())}) FROM STDIN"
    # Autocommit, so that each transaction() below is a transaction and not a savepoint.
    with psycopg.connect(libpq_url(url), autocommit=True) as pg:
        for made, owners in _chunks(layout):
            with pg.transaction(), pg.cursor() as cursor:
                for statement, rows in ((copy_conversations, made), (copy_participants, owners)):
                    with cursor.copy(statement) as copy:
                        for row in rows:
                            copy.write_row(row)
        pg.execute("VACUUM ANALYZE conversations, participants")


def prefill(url: str, tenant: Tenant, size: int, coze_targets: int) -> tuple[Layout, float]:
    """Write ``size`` conversations; their layout and the seconds it took."""
    started = time.monotonic()
    extra = _extra_apps(url, APPS - 2) if size else []
    placed = layout(size, tenant, extra, coze_targets)
    if size:
        (_fill_sqlite if url.startswith("sqlite") else _fill_postgresql)(url, placed)
    return placed, time.monotonic() - started


def settle(url: str) -> float:
    """Write what the prefill left in memory to disk; the seconds it took.

    The prefill does not sync (SQLite's ``synchronous=OFF``), and PostgreSQL's checkpoints lag
    behind a bulk load: without this, what is left (1.4 GB after 10 million SQLite rows) is
    written back by the kernel and by PostgreSQL's checkpointer during the first windows, on the
    disk the server's commits sync to. A table that size in use has no such backlog."""
    started = time.monotonic()
    if url.startswith("postgresql"):
        with psycopg.connect(libpq_url(url), autocommit=True) as pg:
            pg.execute("CHECKPOINT")
    os.sync()
    return time.monotonic() - started


def disk_problem(engine: str, workdir: Path, size: int) -> str | None:
    """Why ``size`` prefilled conversations would not fit on the disk of ``engine``, or None."""
    where = workdir if engine == "sqlite" else _postgres_data_directory()
    if where is None:
        return None  # not readable from here (another host): nothing to check
    needed = size * BYTES_PER_CONVERSATION + _DISK_MARGIN
    free = shutil.disk_usage(where).free
    if free >= needed:
        return None
    return (
        f"{engine}: {size:,} conversations need about {needed / 2**30:.1f} GiB on {where}, "
        f"which has {free / 2**30:.1f} GiB free; free some space or use smaller --sizes"
    )


def _postgres_data_directory() -> Path | None:
    from tests.postgres import POSTGRES_ADMIN_URL

    engine = sa.create_engine(POSTGRES_ADMIN_URL)
    try:
        with engine.connect() as conn:
            found = Path(str(conn.execute(sa.text("SHOW data_directory")).scalar_one()))
    except sa.exc.SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return found if found.exists() else None


def drop_timed_creates(url: str, app_id: int) -> None:
    """Delete what the Create windows made in their own app, so that the tables stay at the
    size the report names (the server is idle between windows; it caches no conversation)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args=_connect_args(url))
    try:
        with engine.begin() as conn:
            conn.execute(participants.delete().where(participants.c.app_id == app_id))
            conn.execute(conversations.delete().where(conversations.c.app_id == app_id))
    finally:
        engine.dispose()


def _connect_args(url: str) -> dict[str, Any]:
    return {"timeout": 30} if url.startswith("sqlite") else {}
