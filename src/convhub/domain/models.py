"""What the service keeps: accounts and their apps and keys, conversations and their members."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class ConversationType(IntEnum):
    SINGLE = 1
    GROUP = 2
    LIVE_GROUP = 100


class ConversationStatus(IntEnum):
    NORMAL = 0
    DISSOLVED = 1


class Role(IntEnum):
    MEMBER = 0
    OWNER = 1
    ADMIN = 2


class ParticipantStatus(IntEnum):
    NORMAL = 0
    EXITED = 1


class EntityStatus(IntEnum):
    """Status of an account, an app or a key."""

    ACTIVE = 0
    DISABLED = 1


@dataclass(slots=True)
class Account:
    id: int
    name: str
    status: EntityStatus
    create_time: int


@dataclass(slots=True)
class App:
    app_id: int
    account_id: int
    name: str
    status: EntityStatus
    create_time: int


@dataclass(slots=True)
class AccessKey:
    access_key: str
    account_id: int
    secret_key: str
    status: EntityStatus
    create_time: int


@dataclass(slots=True)
class Conversation:
    """A conversation. User IDs are kept as canonical strings (see ``users.canonical_user``)."""

    id: int
    app_id: int
    inbox_type: int
    type: ConversationType
    owner: str
    creator: str
    other: str | None
    create_time: int
    modify_time: int
    name: str = ""
    avatar_url: str = ""
    description: str = ""
    notice: str = ""
    ext: dict[str, str] = field(default_factory=dict)
    status: ConversationStatus = ConversationStatus.NORMAL
    member_count: int = 0
    online_count: int = 0
    bot_id: str = ""
    connector_id: str = ""
    section_id: int = 0  # the current context section: Coze's last_section_id


@dataclass(slots=True)
class Participant:
    conversation_id: int
    user: str
    role: Role
    operator: str
    create_time: int
    status: ParticipantStatus = ParticipantStatus.NORMAL


@dataclass(slots=True)
class Message:
    id: int
    conversation_id: int
    section_id: int
    sender: str
    role: str
    type: str
    content: str
    content_type: str
    meta_data: dict[str, str]
    bot_id: str
    chat_id: str
    create_time: int
    update_time: int


@dataclass(slots=True)
class Token:
    """A personal access token: a user of an account, acting in one app, with permissions."""

    id: int
    account_id: int
    app_id: int
    user: str
    name: str
    permissions: frozenset[str]
    create_time: int
    expire_time: int | None
    revoked: bool
