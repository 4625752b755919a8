"""Requests to the core, already decoded from a wire dialect: typed, but not yet validated."""

from __future__ import annotations

from dataclasses import dataclass

from convhub.domain.models import ConversationType


@dataclass(frozen=True, slots=True)
class NewMessage:
    role: str
    content: str
    content_type: str = "text"
    meta_data: dict[str, str] | None = None
    type: str | None = None


@dataclass(frozen=True, slots=True)
class SendMessage:
    """A Volcengine message (§7.15); user lists are canonical user keys."""

    app_id: int
    conversation_id: int
    sender: str | None
    msg_type: int
    content: str
    client_msg_id: str | None = None
    create_time: int | None = None  # ms
    ext: dict[str, str] | None = None
    mentioned_users: tuple[str, ...] = ()
    visible_users: tuple[str, ...] = ()
    invisible_users: tuple[str, ...] = ()
    priority: int | None = None
    ref_message_id: int | None = None
    ref_hint: str | None = None


@dataclass(frozen=True, slots=True)
class CreateConversation:
    app_id: int
    owner: str | None
    other: str | None
    type: int
    inbox_type: int = 0
    idempotent_id: str | None = None
    name: str | None = None
    avatar_url: str | None = None
    description: str | None = None
    notice: str | None = None
    ext: dict[str, str] | None = None
    bot_id: str | None = None
    connector_id: str | None = None
    meta_data: dict[str, str] | None = None  # Coze's name for Ext, under Coze's limits
    messages: tuple[NewMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class ModifyConversation:
    """Only the fields that are not None change."""

    app_id: int
    conversation_id: int
    name: str | None = None
    avatar_url: str | None = None
    description: str | None = None
    notice: str | None = None
    ext: dict[str, str] | None = None
    owner: str | None = None


__all__ = [
    "ConversationType",
    "CreateConversation",
    "ModifyConversation",
    "NewMessage",
]
