"""The domain's ``Repository`` over one SQLAlchemy connection, inside a transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from convhub.domain.models import (
    AccessKey,
    Account,
    App,
    Conversation,
    ConversationStatus,
    ConversationType,
    EntityStatus,
    Participant,
    ParticipantStatus,
    Role,
)
from convhub.store.tables import access_keys, accounts, apps, conversations, participants

# Statements are built once: building a construct and its cache key on every call cost more
# than running it (BatchGet of 100 rows spent most of its time in SQLAlchemy, not in SQLite).
_COLUMNS = (
    conversations.c.id,
    conversations.c.app_id,
    conversations.c.inbox_type,
    conversations.c.type,
    conversations.c.owner_user,
    conversations.c.creator_user,
    conversations.c.other_user,
    conversations.c.create_time,
    conversations.c.modify_time,
    conversations.c.name,
    conversations.c.avatar_url,
    conversations.c.description,
    conversations.c.notice,
    conversations.c.ext,
    conversations.c.status,
    conversations.c.member_count,
    conversations.c.online_count,
)
_SELECT_BY_KEY = select(*_COLUMNS).where(
    conversations.c.app_id == bindparam("app_id"),
    conversations.c.inbox_type == bindparam("inbox_type"),
    conversations.c.idempotency_key == bindparam("key"),
)
_SELECT_ONE = select(*_COLUMNS).where(
    conversations.c.id == bindparam("id"), conversations.c.app_id == bindparam("app_id")
)
# By primary key alone, the app checked on the rows: given "AND app_id = ?", both planners
# (PostgreSQL without fresh statistics, SQLite with a BIGINT key) chose the (app, inbox, key)
# index and read every conversation of the app.
_SELECT_MANY = select(*_COLUMNS).where(conversations.c.id.in_(bindparam("ids", expanding=True)))
_INSERT_CONVERSATIONS = conversations.insert()
_INSERT_PARTICIPANTS = participants.insert()
# The keyed insert must answer at once; RETURNING, not rowcount, tells whether it wrote: with
# SQLAlchemy 2.1 and psycopg an INSERT's rowcount reads -1.
_INSERT_KEYED = {
    name: dialect.insert(conversations)
    .on_conflict_do_nothing(index_elements=["app_id", "inbox_type", "idempotency_key"])
    .returning(conversations.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
# UPDATEs without .values(): the SET list comes from the parameter names at execution.
_UPDATE_CONVERSATION = update(conversations).where(conversations.c.id == bindparam("b_id"))
_SELECT_PARTICIPANT = select(
    participants.c.conversation_id,
    participants.c.user_id,
    participants.c.role,
    participants.c.operator,
    participants.c.create_time,
    participants.c.status,
).where(
    participants.c.conversation_id == bindparam("conversation_id"),
    participants.c.user_id == bindparam("user"),
)
_SET_ROLE = update(participants).where(
    participants.c.conversation_id == bindparam("b_conversation_id"),
    participants.c.user_id == bindparam("b_user"),
)
_SELECT_CREDENTIALS = (
    select(
        access_keys.c.access_key,
        access_keys.c.account_id,
        access_keys.c.secret_key,
        access_keys.c.status,
        access_keys.c.create_time,
        accounts.c.name,
        accounts.c.status,
        accounts.c.create_time,
    )
    .join(accounts, accounts.c.id == access_keys.c.account_id)
    .where(access_keys.c.access_key == bindparam("access_key"))
)
_SELECT_APP = select(
    apps.c.app_id, apps.c.account_id, apps.c.name, apps.c.status, apps.c.create_time
).where(apps.c.app_id == bindparam("app_id"))

_TYPES = {t.value: t for t in ConversationType}
_STATUSES = {s.value: s for s in ConversationStatus}


def _conversation(row: Sequence[Any]) -> Conversation:
    (
        id_, app_id, inbox_type, kind, owner, creator, other, create_time, modify_time,
        name, avatar_url, description, notice, ext, status, member_count, online_count,
    ) = row  # fmt: skip
    return Conversation(
        id_, app_id, inbox_type, _TYPES[kind], owner, creator, other, create_time, modify_time,
        name, avatar_url, description, notice, orjson.loads(ext), _STATUSES[status],
        member_count, online_count,
    )  # fmt: skip


class SqlRepository:
    """Inserts that cannot conflict (no idempotency key; members) are held back and written
    together in one executemany by ``flush``, which runs before any other statement that might
    see them and before the transaction commits. Under group commit this turns a batch of
    creates into two statements instead of two per create."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._pending_conversations: list[dict[str, Any]] = []
        self._pending_participants: list[dict[str, Any]] = []

    def discard(self) -> None:
        self._pending_conversations = []
        self._pending_participants = []

    def flush(self) -> None:
        if self._pending_conversations:
            self._conn.execute(_INSERT_CONVERSATIONS, self._pending_conversations)
            self._pending_conversations = []
        if self._pending_participants:
            self._conn.execute(_INSERT_PARTICIPANTS, self._pending_participants)
            self._pending_participants = []

    def get_credentials(self, access_key: str) -> tuple[AccessKey, Account] | None:
        self.flush()
        row = self._conn.execute(_SELECT_CREDENTIALS, {"access_key": access_key}).first()
        if row is None:
            return None
        key, account_id, secret, status, created, name, account_status, account_created = row
        return (
            AccessKey(key, account_id, secret, EntityStatus(status), created),
            Account(account_id, name, EntityStatus(account_status), account_created),
        )

    def get_app(self, app_id: int) -> App | None:
        self.flush()
        row = self._conn.execute(_SELECT_APP, {"app_id": app_id}).first()
        if row is None:
            return None
        app, account_id, name, status, created = row
        return App(app, account_id, name, EntityStatus(status), created)

    def insert_conversation(self, conversation: Conversation, idempotency_key: str | None) -> bool:
        c = conversation
        values = {
            "id": c.id,
            "app_id": c.app_id,
            "inbox_type": c.inbox_type,
            "type": int(c.type),
            "idempotency_key": idempotency_key,
            "name": c.name,
            "avatar_url": c.avatar_url,
            "description": c.description,
            "notice": c.notice,
            "ext": orjson.dumps(c.ext).decode(),
            "owner_user": c.owner,
            "creator_user": c.creator,
            "other_user": c.other,
            "status": int(c.status),
            "member_count": c.member_count,
            "online_count": c.online_count,
            "create_time": c.create_time,
            "modify_time": c.modify_time,
        }
        if idempotency_key is None:
            self._pending_conversations.append(values)
            return True
        # Needs its answer now; it neither depends on nor affects the held-back rows.
        statement = _INSERT_KEYED[self._conn.dialect.name]
        return self._conn.execute(statement, values).first() is not None

    def find_by_idempotency_key(
        self, app_id: int, inbox_type: int, idempotency_key: str
    ) -> Conversation | None:
        self.flush()
        params = {"app_id": app_id, "inbox_type": inbox_type, "key": idempotency_key}
        row = self._conn.execute(_SELECT_BY_KEY, params).first()
        return None if row is None else _conversation(row)

    def get_conversation(self, app_id: int, conversation_id: int) -> Conversation | None:
        self.flush()
        row = self._conn.execute(_SELECT_ONE, {"id": conversation_id, "app_id": app_id}).first()
        return None if row is None else _conversation(row)

    def get_conversations(self, app_id: int, conversation_ids: Sequence[int]) -> list[Conversation]:
        self.flush()
        rows = self._conn.execute(_SELECT_MANY, {"ids": list(conversation_ids)}).all()
        return [_conversation(row) for row in rows if row[1] == app_id]

    def update_conversation(self, conversation: Conversation) -> None:
        self.flush()
        c = conversation
        self._conn.execute(
            _UPDATE_CONVERSATION,
            {
                "b_id": c.id,
                "name": c.name,
                "avatar_url": c.avatar_url,
                "description": c.description,
                "notice": c.notice,
                "ext": orjson.dumps(c.ext).decode(),
                "owner_user": c.owner,
                "status": int(c.status),
                "member_count": c.member_count,
                "modify_time": c.modify_time,
            },
        )

    def insert_participants(self, members: Sequence[Participant]) -> None:
        self._pending_participants.extend(
            {
                "conversation_id": p.conversation_id,
                "user_id": p.user,
                "role": int(p.role),
                "status": int(p.status),
                "operator": p.operator,
                "create_time": p.create_time,
            }
            for p in members
        )

    def get_participant(self, conversation_id: int, user: str) -> Participant | None:
        self.flush()
        params = {"conversation_id": conversation_id, "user": user}
        row = self._conn.execute(_SELECT_PARTICIPANT, params).first()
        if row is None:
            return None
        conversation, user_id, role, operator, created, status = row
        return Participant(
            conversation, user_id, Role(role), operator, created, ParticipantStatus(status)
        )

    def set_participant_role(self, conversation_id: int, user: str, role: Role) -> None:
        self.flush()
        params = {"b_conversation_id": conversation_id, "b_user": user, "role": int(role)}
        self._conn.execute(_SET_ROLE, params)
