"""Conversations: keyed and unkeyed inserts, reads by ID and key, updates, message indexes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from convhub.domain.models import Conversation, ConversationStatus, ConversationType
from convhub.store.mapping import JSON, Mapper, enum
from convhub.store.session import Session
from convhub.store.tables import conversations

c = conversations.c
MAPPER = Mapper(
    conversations,
    Conversation,
    renamed={"owner": "owner_user", "creator": "creator_user", "other": "other_user"},
    codecs={"type": enum(ConversationType), "status": enum(ConversationStatus), "ext": JSON},
)
# What ``update`` writes back; the rest never changes after the insert.
_MUTABLE = (
    "name", "avatar_url", "description", "notice", "ext", "owner", "status", "member_count",
    "modify_time", "section_id",
)  # fmt: skip

# Statements are built once: building a construct and its cache key on every call cost more
# than running it (BatchGet of 100 rows spent most of its time in SQLAlchemy, not in SQLite).
_SELECT = select(*MAPPER.columns)
_SELECT_BY_KEY = _SELECT.where(
    c.app_id == bindparam("app_id"),
    c.inbox_type == bindparam("inbox_type"),
    c.idempotency_key == bindparam("key"),
)
_SELECT_ONE = _SELECT.where(c.id == bindparam("id"))
# By primary key alone, the app checked by the caller: given "AND app_id = ?", both planners
# (PostgreSQL without fresh statistics, SQLite with a BIGINT key) chose the (app, inbox, key)
# index and read every conversation of the app.
_SELECT_MANY = _SELECT.where(c.id.in_(bindparam("ids", expanding=True)))
_INSERT = conversations.insert()
# The keyed insert must answer at once; RETURNING, not rowcount, tells whether it wrote: with
# SQLAlchemy 2.1 and psycopg an INSERT's rowcount reads -1.
_INSERT_KEYED = {
    name: dialect.insert(conversations)
    .on_conflict_do_nothing(index_elements=["app_id", "inbox_type", "idempotency_key"])
    .returning(c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
# UPDATEs without .values(): the SET list comes from the parameter names at execution.
_UPDATE = update(conversations).where(c.id == bindparam("b_id"))
_TAKE_INDEXES = (
    update(conversations)
    .where(c.id == bindparam("b_id"))
    .values(last_message_index=c.last_message_index + bindparam("count"))
    .returning(c.last_message_index)
)


class SqlConversations:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, conversation: Conversation, idempotency_key: str | None) -> bool:
        values = MAPPER.dump(conversation)
        values["idempotency_key"] = idempotency_key
        if idempotency_key is None:
            self._session.hold(_INSERT, [values])
            return True
        # Needs its answer now; it neither depends on nor affects the held-back rows.
        statement = _INSERT_KEYED[self._session.dialect]
        return self._session.write(statement, values).first() is not None

    def get(self, conversation_id: int) -> Conversation | None:
        row = self._session.read(_SELECT_ONE, {"id": conversation_id}).first()
        return None if row is None else MAPPER.load(row)

    def get_many(self, conversation_ids: Sequence[int]) -> list[Conversation]:
        rows = self._session.read(_SELECT_MANY, {"ids": list(conversation_ids)}).all()
        return [MAPPER.load(row) for row in rows]

    def find_by_key(
        self, app_id: int, inbox_type: int, idempotency_key: str
    ) -> Conversation | None:
        params = {"app_id": app_id, "inbox_type": inbox_type, "key": idempotency_key}
        row = self._session.read(_SELECT_BY_KEY, params).first()
        return None if row is None else MAPPER.load(row)

    def update(self, conversation: Conversation) -> None:
        values = MAPPER.dump(conversation, _MUTABLE)
        values["b_id"] = conversation.id
        self._session.write(_UPDATE, values)

    def dissolve(self, conversation: Conversation) -> None:
        conversation.status = ConversationStatus.DISSOLVED
        values = MAPPER.dump(conversation, _MUTABLE)
        values["b_id"] = conversation.id
        values["idempotency_key"] = None
        self._session.write(_UPDATE, values)

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

    def take_message_indexes(self, conversation_id: int, count: int) -> int:
        params = {"b_id": conversation_id, "count": count}
        last: int = self._session.write(_TAKE_INDEXES, params).scalar_one()
        return last
