"""Conversations: keyed and unkeyed inserts, reads by ID and key, updates, message indexes, a
user's conversations, and the marks of live groups."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Update, bindparam, func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite

from convhub.domain.models import (
    Conversation,
    ConversationStatus,
    ConversationType,
    ParticipantStatus,
)
from convhub.domain.ports import UserOrder
from convhub.store import clock
from convhub.store.driver import InList, fast
from convhub.store.kept import KeptRows, in_order
from convhub.store.mapping import JSON, Mapper, enum
from convhub.store.session import Session
from convhub.store.tables import conversation_marks, conversations, participants

c = conversations.c
# Kept conversations share one int object per app for their ``app_id``, instead of each its own:
# a read of 100 kept conversations compares each one's app, and with the conversations scattered
# over hundreds of megabytes each int of its own was one more miss in the CPU's caches. With the
# encoded forms beside ``app_id`` (models.py), BatchGet(100) over a million rows made 12% more
# req/s on SQLite and 11% on PostgreSQL where misses were dear (4% and 0% where they were not).
# Past this many apps, the conversations of the others keep their own.
_SHARED_APP_IDS = 4096
_app_ids: dict[int, int] = {}
MAPPER = Mapper(
    conversations,
    Conversation,
    renamed={"owner": "owner_user", "creator": "creator_user", "other": "other_user"},
    codecs={"type": enum(ConversationType), "status": enum(ConversationStatus), "ext": JSON},
)
_NORMAL = int(ConversationStatus.NORMAL)

# Statements are built once: building a construct and its cache key on every call cost more
# than running it (BatchGet of 100 rows spent most of its time in SQLAlchemy, not in SQLite).
_SELECT = select(*MAPPER.columns)
_SELECT_BY_KEY = fast(
    _SELECT.where(
        c.app_id == bindparam("app_id"),
        c.inbox_type == bindparam("inbox_type"),
        c.idempotency_key == bindparam("key"),
    )
)
_SELECT_ONE = fast(_SELECT.where(c.id == bindparam("id")))
# FOR UPDATE on PostgreSQL (SQLite's writer holds the database's one write lock anyway): every
# change to a conversation's members reads its counters under this lock.
_LOCK_ONE = fast(_SELECT.where(c.id == bindparam("id")).with_for_update())
# A write batch's conversations, locked in ID order (every process's batches take their locks in
# one order) in one round trip; the ID first, to find each row by.
_LOCK_MANY = InList(
    lambda where: select(c.id, *MAPPER.columns).where(where).order_by(c.id).with_for_update(),
    c.id,
    "ids",
)
# By primary key alone, the app checked by the caller: given "AND app_id = ?", both planners
# (PostgreSQL without fresh statistics, SQLite with a BIGINT key) chose the (app, inbox, key)
# index and read every conversation of the app.
_SELECT_MANY = InList(_SELECT.where, c.id, "ids")
# The read side's two steps (see store/kept.py): the versions, then only the rows not kept.
_VERSIONS = InList(select(c.id, c.version).where, c.id, "ids")
_SELECT_MANY_VERSIONED = InList(select(c.version, *MAPPER.columns).where, c.id, "ids")
_INSERT = fast(conversations.insert())
# The keyed insert must answer at once; RETURNING, not rowcount, tells whether it wrote: with
# SQLAlchemy 2.1 and psycopg an INSERT's rowcount reads -1.
_INSERT_KEYED = {
    name: fast(
        dialect.insert(conversations)
        .on_conflict_do_nothing(index_elements=["app_id", "inbox_type", "idempotency_key"])
        .returning(c.id)
    )
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
# The SET list comes from the parameter names at execution; every update raises the version,
# and notes the row in the session's ``touched`` (store/clock.py).
_BUMP = c.version + literal_column("1")
# One statement for each set of names: the session holds a batch's updates back and sends those
# of one statement together (``Session.hold_change``; on PostgreSQL one statement for many rows).
_UPDATES: dict[frozenset[str], Update] = {}


def _update(names: Iterable[str]) -> Update:
    key = frozenset(names)
    found = _UPDATES.get(key)
    if found is None:
        found = _UPDATES[key] = fast(
            update(conversations).where(c.id == bindparam("b_id")).values(version=_BUMP)
        )
    return found


_TAKE_INDEXES = fast(
    update(conversations)
    .where(c.id == bindparam("b_id"))
    .values(
        last_message_index=c.last_message_index + bindparam("count"),
        activity_key=bindparam("activity_key"),
        version=_BUMP,
    )
    .returning(c.last_message_index)
)
_COUNT_LIVE = fast(
    select(func.count()).where(
        c.app_id == bindparam("app_id"),
        c.type == int(ConversationType.LIVE_GROUP),
        c.status == _NORMAL,
    )
)
_p = participants.c
_OF_USER = _SELECT.join(participants, _p.conversation_id == c.id).where(
    _p.app_id == bindparam("app_id"),
    _p.user_id == bindparam("user"),
    _p.status == int(ParticipantStatus.NORMAL),
    c.status == _NORMAL,
    c.inbox_type == bindparam("inbox_type"),
)
_BY_ORDER = {
    UserOrder.ACTIVITY: _OF_USER.where(c.activity_key < bindparam("cursor"))
    .order_by(c.activity_key.desc())
    .limit(bindparam("limit")),
    UserOrder.CREATED: _OF_USER.where(c.id > bindparam("cursor"))
    .order_by(c.id.asc())
    .limit(bindparam("limit")),
    UserOrder.OWN_LIVE_GROUPS: _SELECT.where(
        c.app_id == bindparam("app_id"),
        c.creator_user == bindparam("user"),
        c.type == int(ConversationType.LIVE_GROUP),
        c.status == _NORMAL,
        c.inbox_type == bindparam("inbox_type"),
        c.id < bindparam("cursor"),
    )
    .order_by(c.id.desc())
    .limit(bindparam("limit")),
}
_BY_ORDER_VERSIONS = {
    order: statement.with_only_columns(c.id, c.version) for order, statement in _BY_ORDER.items()
}
for _statement in (*_BY_ORDER.values(), *_BY_ORDER_VERSIONS.values()):
    fast(_statement)
_m = conversation_marks.c
_SELECT_MARKS = fast(
    select(_m.mark_type).where(_m.conversation_id == bindparam("id")).order_by(_m.mark_type)
)
_INSERT_MARK = fast(conversation_marks.insert())
_DELETE_MARK = fast(
    conversation_marks.delete().where(
        _m.conversation_id == bindparam("id"), _m.mark_type == bindparam("mark")
    )
)


class KeyTaken(Exception):
    """A keyed insert sent without waiting found its key taken: its batch runs again."""


def _inserted(conversation_id: int | None) -> None:
    if conversation_id is None:
        raise KeyTaken


class SqlConversations:
    __slots__ = ("_follow", "_kept", "_locked", "_session", "_since")

    def __init__(self, session: Session, kept: KeptRows[int, Conversation] | None = None) -> None:
        self._session = session
        self._kept = kept  # read-only units only
        self._since = 0 if kept is None else kept.generation
        self._locked: dict[int, Sequence[object]] = {}  # rows ``lock_many`` read, by ID
        self._follow = False  # whether this transaction's updates are applied to them

    def begin_read(self) -> None:
        if self._kept is not None:
            self._since = self._kept.generation

    def add(self, conversation: Conversation, idempotency_key: str | None) -> bool:
        values = MAPPER.dump(conversation)
        values["idempotency_key"] = idempotency_key
        if idempotency_key is None:
            self._session.hold(_INSERT, [values])
            return True
        # It neither depends on nor affects the held-back rows.
        statement = _INSERT_KEYED[self._session.dialect]
        if self._session.defers_checks:
            # Sent without waiting: when the batch ends it must have inserted. If the key was
            # taken, the batch runs again unit by unit, where this insert is answered at once
            # and the unit reads the conversation that holds the key.
            self._session.check_around_held(statement, values, _inserted, writes=True)
            return True
        return self._session.write(statement, values).first() is not None

    def lock_many(self, conversation_ids: Sequence[int], *, follow_updates: bool) -> None:
        """Lock and read these conversations now: ``get(…, lock=True)`` then takes each from
        here. ``follow_updates``: ``update`` changes the row kept here as it changes the table,
        so the next unit reads the row as the units before it left it without a statement. Only
        where a unit that fails after writing rolls back the whole transaction; under a savepoint
        per unit, a row this transaction changes is read again (the rollback of one unit would
        leave the kept row ahead of the table)."""
        statement = _LOCK_MANY.bind(self._session.dialect, conversation_ids)
        self._locked = {row[0]: row[1:] for row in self._session.read(*statement)}
        self._follow = follow_updates

    def get(self, conversation_id: int, *, lock: bool = False) -> Conversation | None:
        if lock:
            locked = self._locked.get(conversation_id)
            if locked is not None:
                return MAPPER.load(locked)
        elif self._kept is not None and self._kept.valid_at is not None:
            # A read-only unit while the kept rows are known current: the write clocks instead of
            # the row's 25 columns (Scan and message pages read one each time).
            found = self.get_many((conversation_id,))
            return found[0] if found else None
        statement = _LOCK_ONE if lock else _SELECT_ONE
        row = self._session.read(statement, {"id": conversation_id}).first()
        return None if row is None else MAPPER.load(row)

    def get_many(self, conversation_ids: Sequence[int]) -> list[Conversation]:
        if not conversation_ids:
            return []
        kept = self._kept
        session = self._session
        if kept is None:
            rows = session.read(*_SELECT_MANY.bind(session.dialect, conversation_ids))
            return [MAPPER.load(row) for row in rows]
        watch = kept.clock
        if watch is not None and watch.trusted(lambda: session.read(clock.NOW).all()):
            # Nobody but this process's writer wrote, and it forgot what it changed.
            return self._kept_or_read(kept, *kept.resolve_current(conversation_ids))
        versions = session.read(*_VERSIONS.bind(session.dialect, conversation_ids))
        return self._kept_or_read(kept, *kept.resolve(versions))

    def _kept_or_read(
        self, kept: KeptRows[int, Conversation], found: list[Conversation | int], missing: list[int]
    ) -> list[Conversation]:
        """``found`` in order, its kept conversations as they are, its IDs (``missing``) read
        in one statement (at their newest version) and kept."""
        if not missing:
            return cast(list[Conversation], found)
        read: dict[int, Conversation] = {}
        statement = _SELECT_MANY_VERSIONED.bind(self._session.dialect, missing)
        rows = []
        apps = _app_ids
        for row in self._session.read(*statement):
            conversation = MAPPER.load(row[1:])
            shared = apps.get(conversation.app_id)
            if shared is None and len(apps) < _SHARED_APP_IDS:
                shared = apps.setdefault(conversation.app_id, conversation.app_id)
            if shared is not None:
                conversation.app_id = shared
            rows.append((conversation.id, row[0], conversation))
            read[conversation.id] = conversation
        kept.put_many(rows, since=self._since)
        return in_order(found, read, Conversation)

    def find_by_key(
        self, app_id: int, inbox_type: int, idempotency_key: str
    ) -> Conversation | None:
        params = {"app_id": app_id, "inbox_type": inbox_type, "key": idempotency_key}
        row = self._session.read(_SELECT_BY_KEY, params).first()
        return None if row is None else MAPPER.load(row)

    def update(self, conversation: Conversation, fields: tuple[str, ...]) -> None:
        values = MAPPER.dump(conversation, fields)
        self._changing(conversation.id, values)
        values["b_id"] = conversation.id
        self._session.hold_change(_update(values), values, conversation.id)

    def dissolve(self, conversation: Conversation) -> None:
        conversation.status = ConversationStatus.DISSOLVED
        values = MAPPER.dump(conversation, ("status", "modify_time"))
        self._changing(conversation.id, values)
        values["b_id"] = conversation.id
        values["idempotency_key"] = None
        self._session.hold_change(_update(values), values, conversation.id)

    def _changing(self, conversation_id: int, values: dict[str, object]) -> None:
        """Note a change of the row (readers forget it: ``touched``) and apply it to the row
        locked ahead, or forget that row (``lock_many``)."""
        self._session.touched.add(conversation_id)
        locked = self._locked.get(conversation_id)
        if locked is not None:
            if self._follow:
                self._locked[conversation_id] = MAPPER.patched(locked, values)
            else:
                del self._locked[conversation_id]

    def list_created(
        self,
        app_id: int,
        creator: str,
        *,
        bot_id: str,
        connector_id: str,
        offset: int,
        limit: int,
        descending: bool,
    ) -> list[Conversation]:
        query = (
            _SELECT.where(
                c.app_id == app_id,
                c.creator_user == creator,
                c.bot_id == bot_id,
                c.connector_id == connector_id,
                c.status == int(ConversationStatus.NORMAL),
            )
            .order_by(c.id.desc() if descending else c.id.asc())
            .offset(offset)
            .limit(limit)
        )
        return [MAPPER.load(row) for row in self._session.read(query).all()]

    def take_message_indexes(self, conversation_id: int, count: int, activity_key: int) -> int:
        params = {"b_id": conversation_id, "count": count, "activity_key": activity_key}
        last: int = self._session.write(_TAKE_INDEXES, params).scalar_one()
        self._changing(conversation_id, {"last_message_index": last, "activity_key": activity_key})
        return last

    def of_user(
        self,
        app_id: int,
        user: str,
        *,
        inbox_type: int,
        order: UserOrder,
        cursor: int,
        limit: int,
    ) -> list[Conversation]:
        params = {
            "app_id": app_id, "user": user, "inbox_type": inbox_type, "cursor": cursor,
            "limit": limit,
        }  # fmt: skip
        kept = self._kept
        if kept is None:
            return [MAPPER.load(row) for row in self._session.read(_BY_ORDER[order], params)]
        versions = self._session.read(_BY_ORDER_VERSIONS[order], params)
        return self._kept_or_read(kept, *kept.resolve(versions))

    def count_live_groups(self, app_id: int) -> int:
        found: int = self._session.read(_COUNT_LIVE, {"app_id": app_id}).scalar_one()
        return found

    def marks(self, conversation_id: int) -> list[str]:
        return list(self._session.read(_SELECT_MARKS, {"id": conversation_id}).scalars())

    def add_marks(self, conversation_id: int, marks: Sequence[str]) -> None:
        rows = [{"conversation_id": conversation_id, "mark_type": mark} for mark in marks]
        if rows:
            self._session.change(_INSERT_MARK, rows)

    def delete_marks(self, conversation_id: int, marks: Sequence[str]) -> None:
        rows = [{"id": conversation_id, "mark": mark} for mark in marks]
        if rows:
            self._session.change(_DELETE_MARK, rows)
