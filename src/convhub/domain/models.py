"""What the service keeps: accounts and their apps and keys, conversations and their members."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


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
    # Not columns: what a dialect encoded of this object for the wire (without and with the
    # member count), held with it for as long as it lives, for objects shared and never changed
    # again (the store's kept rows). Not compared, not carried over by ``dataclasses.replace``.
    # Beside ``id`` and ``app_id`` in memory: a read of 100 kept conversations scattered over a
    # large table touches each object once, not in two places (and no list between them).
    encoded: Any = field(default=None, init=False, repr=False, compare=False)
    encoded_counted: Any = field(default=None, init=False, repr=False, compare=False)
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
    last_message_index: int = 0  # IndexInConversation of its newest message
    last_join_seq: int = 0  # join order of its newest member
    activity_key: int = 0  # an ID minted at creation and at each message: recent activity


@dataclass(slots=True)
class Participant:
    conversation_id: int
    user: str
    role: Role
    operator: str
    create_time: int  # when it (last) joined, seconds
    status: ParticipantStatus = ParticipantStatus.NORMAL
    app_id: int = 0  # the conversation's, copied
    in_group_limit: bool = False  # a Volcengine group: counts toward the user's group limit
    nick_name: str = ""
    level: int = 0
    ext: dict[str, str] = field(default_factory=dict)
    block_time: int = 0  # muted until, seconds; 0: not muted
    join_seq: int = 0  # order of joining in the conversation; a rejoin takes a new one
    history_floor: int = 0  # joined with Barrier: messages up to this index are not its to see


@dataclass(slots=True)
class ConversationSetting:
    """One member's own settings of a conversation."""

    conversation_id: int
    user: str
    is_mute: bool = False
    stick_top_time: int = 0  # ms; 0: not pinned
    favorite_time: int = 0  # ms; 0: not a favourite
    ext: dict[str, str] = field(default_factory=dict)
    read_index: int = 0


class MessageStatus(IntEnum):
    NORMAL = 0
    RECALLED = 1
    DELETED = 2  # for everyone (Volcengine DeleteType 0, Coze delete)
    SENDER_ONLY = 3  # deleted, but its sender still sees it (Volcengine DeleteType 1)


class MsgType(IntEnum):
    """Volcengine message types (doc 337135); Coze content types map onto two of them."""

    TEXT = 10001
    IMAGE = 10003
    VIDEO = 10004
    FILE = 10005
    AUDIO = 10006
    CUSTOM = 10012


@dataclass(slots=True)
class Message:
    """One message, as both dialects see it.

    The Volcengine view (volcengine-im.md §6.5) reads ``sender``, ``msg_type``, ``content``,
    ``ext``, ``index``, ``status``, the visibility lists and ``client_msg_id``; the Coze view reads
    ``role``, ``type``, ``content_type``, ``ext`` (its meta_data), ``section_id``, ``bot_id`` and
    ``chat_id``.
    Times are Unix milliseconds; the Coze view shows seconds.
    """

    id: int
    conversation_id: int
    index: int  # IndexInConversation: 1, 2, 3 … with no gaps within a conversation
    sender: str
    msg_type: int
    content: str
    ext: dict[str, str]
    status: MessageStatus
    create_time: int  # ms
    update_time: int  # ms
    client_msg_id: str | None = None
    mentioned_users: tuple[str, ...] = ()
    visible_users: tuple[str, ...] = ()
    invisible_users: tuple[str, ...] = ()
    ref_message_id: int | None = None
    ref_hint: str = ""
    priority: int = 0
    # Coze
    section_id: int = 0
    role: str = "user"
    type: str = "question"
    content_type: str = "text"
    bot_id: str = ""
    chat_id: str = ""
    # Not a column: the Coze wire form of a message a page kept (store/kept.py), as
    # ``Conversation.encoded``; not compared, not carried over by ``dataclasses.replace``.
    encoded: Any = field(default=None, init=False, repr=False, compare=False)


@dataclass(slots=True)
class Feedback:
    message_id: int
    user: str
    feedback_type: str
    reason_types: tuple[str, ...]
    comment: str
    create_time: int


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
