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
    Message,
    Participant,
    ParticipantStatus,
    Role,
    Token,
)
from convhub.store.tables import (
    access_keys,
    accounts,
    apps,
    conversations,
    message_feedback,
    messages,
    participants,
    tokens,
)

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
    conversations.c.bot_id,
    conversations.c.connector_id,
    conversations.c.section_id,
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

_MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.conversation_id,
    messages.c.section_id,
    messages.c.sender,
    messages.c.role,
    messages.c.type,
    messages.c.content,
    messages.c.content_type,
    messages.c.meta_data,
    messages.c.bot_id,
    messages.c.chat_id,
    messages.c.create_time,
    messages.c.update_time,
)
_SELECT_MESSAGE = select(*_MESSAGE_COLUMNS).where(
    messages.c.id == bindparam("id"),
    messages.c.conversation_id == bindparam("conversation_id"),
    messages.c.deleted == 0,
)
_INSERT_MESSAGES = messages.insert()
_UPDATE_MESSAGE = update(messages).where(messages.c.id == bindparam("b_id"))
_SELECT_TOKEN = (
    select(
        tokens.c.id,
        tokens.c.account_id,
        tokens.c.app_id,
        tokens.c.user_id,
        tokens.c.name,
        tokens.c.permissions,
        tokens.c.create_time,
        tokens.c.expire_time,
        tokens.c.revoked,
        accounts.c.status,
        apps.c.status,
    )
    .join(accounts, accounts.c.id == tokens.c.account_id)
    .join(apps, apps.c.app_id == tokens.c.app_id)
    .where(tokens.c.token_hash == bindparam("token_hash"))
)
_DELETE_FEEDBACK = message_feedback.delete().where(
    message_feedback.c.message_id == bindparam("message_id"),
    message_feedback.c.user_id == bindparam("user"),
)
_INSERT_FEEDBACK = message_feedback.insert()


def _message(row: Sequence[Any]) -> Message:
    (
        id_, conversation_id, section_id, sender, role, kind, content, content_type, meta,
        bot_id, chat_id, create_time, update_time,
    ) = row  # fmt: skip
    return Message(
        id_, conversation_id, section_id, sender, role, kind, content, content_type,
        orjson.loads(meta), bot_id, chat_id, create_time, update_time,
    )  # fmt: skip


_TYPES = {t.value: t for t in ConversationType}
_STATUSES = {s.value: s for s in ConversationStatus}


def _conversation(row: Sequence[Any]) -> Conversation:
    (
        id_, app_id, inbox_type, kind, owner, creator, other, create_time, modify_time,
        name, avatar_url, description, notice, ext, status, member_count, online_count,
        bot_id, connector_id, section_id,
    ) = row  # fmt: skip
    return Conversation(
        id_, app_id, inbox_type, _TYPES[kind], owner, creator, other, create_time, modify_time,
        name, avatar_url, description, notice, orjson.loads(ext), _STATUSES[status],
        member_count, online_count, bot_id, connector_id, section_id,
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
        self._pending_messages: list[dict[str, Any]] = []

    def discard(self) -> None:
        self._pending_conversations = []
        self._pending_participants = []
        self._pending_messages = []

    def flush(self) -> None:
        if self._pending_conversations:
            self._conn.execute(_INSERT_CONVERSATIONS, self._pending_conversations)
            self._pending_conversations = []
        if self._pending_participants:
            self._conn.execute(_INSERT_PARTICIPANTS, self._pending_participants)
            self._pending_participants = []
        if self._pending_messages:
            self._conn.execute(_INSERT_MESSAGES, self._pending_messages)
            self._pending_messages = []

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
            "bot_id": c.bot_id,
            "connector_id": c.connector_id,
            "section_id": c.section_id,
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
                "section_id": c.section_id,
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

    def get_token(self, token_hash: str) -> tuple[Token, EntityStatus, EntityStatus] | None:
        """The token with its account's and app's status."""
        self.flush()
        row = self._conn.execute(_SELECT_TOKEN, {"token_hash": token_hash}).first()
        if row is None:
            return None
        id_, account_id, app_id, user, name, perms, created, expires, revoked, acc, app = row
        token = Token(
            id_,
            account_id,
            app_id,
            user,
            name,
            frozenset(p for p in perms.split(",") if p),
            created,
            expires,
            bool(revoked),
        )
        return token, EntityStatus(acc), EntityStatus(app)

    def list_conversations(
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
        self.flush()
        c = conversations.c
        query = (
            select(*_COLUMNS)
            .where(
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
        return [_conversation(row) for row in self._conn.execute(query).all()]

    def insert_messages(self, new: Sequence[Message]) -> None:
        self._pending_messages.extend(
            {
                "id": m.id,
                "conversation_id": m.conversation_id,
                "section_id": m.section_id,
                "sender": m.sender,
                "role": m.role,
                "type": m.type,
                "content": m.content,
                "content_type": m.content_type,
                "meta_data": orjson.dumps(m.meta_data).decode(),
                "bot_id": m.bot_id,
                "chat_id": m.chat_id,
                "deleted": 0,
                "create_time": m.create_time,
                "update_time": m.update_time,
            }
            for m in new
        )

    def get_message(self, conversation_id: int, message_id: int) -> Message | None:
        self.flush()
        params = {"id": message_id, "conversation_id": conversation_id}
        row = self._conn.execute(_SELECT_MESSAGE, params).first()
        return None if row is None else _message(row)

    def list_messages(
        self,
        conversation_id: int,
        *,
        above: int | None,
        below: int | None,
        ascending: bool,
        limit: int,
        chat_id: str | None,
    ) -> list[Message]:
        """Visible messages with ``above < id < below``, by id in the order asked, at most limit."""
        self.flush()
        m = messages.c
        query = select(*_MESSAGE_COLUMNS).where(
            m.conversation_id == conversation_id, m.deleted == 0
        )
        if above is not None:
            query = query.where(m.id > above)
        if below is not None:
            query = query.where(m.id < below)
        if chat_id is not None:
            query = query.where(m.chat_id == chat_id)
        query = query.order_by(m.id.asc() if ascending else m.id.desc()).limit(limit)
        return [_message(row) for row in self._conn.execute(query).all()]

    def update_message(self, message: Message) -> None:
        self.flush()
        self._conn.execute(
            _UPDATE_MESSAGE,
            {
                "b_id": message.id,
                "content": message.content,
                "content_type": message.content_type,
                "meta_data": orjson.dumps(message.meta_data).decode(),
                "update_time": message.update_time,
            },
        )

    def delete_message(self, message_id: int, update_time: int) -> None:
        self.flush()
        self._conn.execute(
            _UPDATE_MESSAGE, {"b_id": message_id, "deleted": 1, "update_time": update_time}
        )

    def set_feedback(
        self,
        message_id: int,
        user: str,
        *,
        feedback_type: str,
        reason_types: Sequence[str],
        comment: str,
        create_time: int,
    ) -> None:
        """One feedback per user and message: a new one replaces the old."""
        self.flush()
        self._conn.execute(_DELETE_FEEDBACK, {"message_id": message_id, "user": user})
        self._conn.execute(
            _INSERT_FEEDBACK,
            {
                "message_id": message_id,
                "user_id": user,
                "feedback_type": feedback_type,
                "reason_types": orjson.dumps(list(reason_types)).decode(),
                "comment": comment,
                "create_time": create_time,
            },
        )

    def delete_feedback(self, message_id: int, user: str) -> bool:
        self.flush()
        params = {"message_id": message_id, "user": user}
        return bool(self._conn.execute(_DELETE_FEEDBACK, params).rowcount)
