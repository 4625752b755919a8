"""The domain's ``Repository`` over one SQLAlchemy connection, inside a transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Row, and_, select, update
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

_CONVERSATION_COLUMNS = [c for c in conversations.c if c.name != "idempotency_key"]


def _conversation(row: Row[Any]) -> Conversation:
    m = row._mapping
    return Conversation(
        id=m["id"],
        app_id=m["app_id"],
        inbox_type=m["inbox_type"],
        type=ConversationType(m["type"]),
        owner=m["owner_user"],
        creator=m["creator_user"],
        other=m["other_user"],
        create_time=m["create_time"],
        modify_time=m["modify_time"],
        name=m["name"],
        avatar_url=m["avatar_url"],
        description=m["description"],
        notice=m["notice"],
        ext=orjson.loads(m["ext"]),
        status=ConversationStatus(m["status"]),
        member_count=m["member_count"],
        online_count=m["online_count"],
    )


class SqlRepository:
    """Inserts that cannot conflict (no idempotency key; members) are held back and written
    together in one executemany by ``flush``, which runs before any other statement that might
    see them and before the transaction commits. Under group commit this turns a batch of
    creates into two statements instead of two per create."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._postgres = connection.dialect.name == "postgresql"
        self._pending_conversations: list[dict[str, Any]] = []
        self._pending_participants: list[dict[str, Any]] = []

    def flush(self) -> None:
        if self._pending_conversations:
            self._conn.execute(conversations.insert(), self._pending_conversations)
            self._pending_conversations = []
        if self._pending_participants:
            self._conn.execute(participants.insert(), self._pending_participants)
            self._pending_participants = []

    def get_credentials(self, access_key: str) -> tuple[AccessKey, Account] | None:
        self.flush()
        row = self._conn.execute(
            select(
                access_keys,
                accounts.c.name,
                accounts.c.status.label("account_status"),
                accounts.c.create_time.label("account_create_time"),
            )
            .join(accounts, accounts.c.id == access_keys.c.account_id)
            .where(access_keys.c.access_key == access_key)
        ).first()
        if row is None:
            return None
        m = row._mapping
        key = AccessKey(
            access_key=m["access_key"],
            account_id=m["account_id"],
            secret_key=m["secret_key"],
            status=EntityStatus(m["status"]),
            create_time=m["create_time"],
        )
        account = Account(
            id=m["account_id"],
            name=m["name"],
            status=EntityStatus(m["account_status"]),
            create_time=m["account_create_time"],
        )
        return key, account

    def get_app(self, app_id: int) -> App | None:
        self.flush()
        row = self._conn.execute(select(apps).where(apps.c.app_id == app_id)).first()
        if row is None:
            return None
        m = row._mapping
        return App(
            app_id=m["app_id"],
            account_id=m["account_id"],
            name=m["name"],
            status=EntityStatus(m["status"]),
            create_time=m["create_time"],
        )

    def insert_conversation(self, conversation: Conversation, idempotency_key: str | None) -> bool:
        values = {
            "id": conversation.id,
            "app_id": conversation.app_id,
            "inbox_type": conversation.inbox_type,
            "type": int(conversation.type),
            "idempotency_key": idempotency_key,
            "name": conversation.name,
            "avatar_url": conversation.avatar_url,
            "description": conversation.description,
            "notice": conversation.notice,
            "ext": orjson.dumps(conversation.ext).decode(),
            "owner_user": conversation.owner,
            "creator_user": conversation.creator,
            "other_user": conversation.other,
            "status": int(conversation.status),
            "member_count": conversation.member_count,
            "online_count": conversation.online_count,
            "create_time": conversation.create_time,
            "modify_time": conversation.modify_time,
        }
        if idempotency_key is None:
            self._pending_conversations.append(values)
            return True
        # Needs its answer now; it neither depends on nor affects the held-back rows.
        insert = postgresql.insert if self._postgres else sqlite.insert
        statement = insert(conversations).on_conflict_do_nothing(
            index_elements=["app_id", "inbox_type", "idempotency_key"]
        )
        return self._conn.execute(statement, values).rowcount == 1

    def find_by_idempotency_key(
        self, app_id: int, inbox_type: int, idempotency_key: str
    ) -> Conversation | None:
        self.flush()
        row = self._conn.execute(
            select(*_CONVERSATION_COLUMNS).where(
                and_(
                    conversations.c.app_id == app_id,
                    conversations.c.inbox_type == inbox_type,
                    conversations.c.idempotency_key == idempotency_key,
                )
            )
        ).first()
        return None if row is None else _conversation(row)

    def get_conversation(self, app_id: int, conversation_id: int) -> Conversation | None:
        self.flush()
        row = self._conn.execute(
            select(*_CONVERSATION_COLUMNS).where(
                and_(conversations.c.id == conversation_id, conversations.c.app_id == app_id)
            )
        ).first()
        return None if row is None else _conversation(row)

    def get_conversations(self, app_id: int, conversation_ids: Sequence[int]) -> list[Conversation]:
        self.flush()
        rows = self._conn.execute(
            select(*_CONVERSATION_COLUMNS).where(
                and_(
                    conversations.c.id.in_(conversation_ids),
                    conversations.c.app_id == app_id,
                )
            )
        )
        return [_conversation(row) for row in rows]

    def update_conversation(self, conversation: Conversation) -> None:
        self.flush()
        self._conn.execute(
            update(conversations)
            .where(conversations.c.id == conversation.id)
            .values(
                name=conversation.name,
                avatar_url=conversation.avatar_url,
                description=conversation.description,
                notice=conversation.notice,
                ext=orjson.dumps(conversation.ext).decode(),
                owner_user=conversation.owner,
                status=int(conversation.status),
                member_count=conversation.member_count,
                modify_time=conversation.modify_time,
            )
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
        row = self._conn.execute(
            select(participants).where(
                and_(
                    participants.c.conversation_id == conversation_id,
                    participants.c.user_id == user,
                )
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        return Participant(
            conversation_id=m["conversation_id"],
            user=m["user_id"],
            role=Role(m["role"]),
            operator=m["operator"],
            create_time=m["create_time"],
            status=ParticipantStatus(m["status"]),
        )

    def set_participant_role(self, conversation_id: int, user: str, role: Role) -> None:
        self.flush()
        self._conn.execute(
            update(participants)
            .where(
                and_(
                    participants.c.conversation_id == conversation_id,
                    participants.c.user_id == user,
                )
            )
            .values(role=int(role))
        )
