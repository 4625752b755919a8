"""The Coze conversation endpoints' query parameters, bodies and answers, declared once.

The server reads query strings and bodies through readers compiled from these declarations, its
handlers return the declared answers, and the OpenAPI document is generated from them. An answer
is the part of the envelope after ``code``, ``msg`` and ``detail``. IDs are answered as JSON strings
(cozepy refuses numbers there); in requests they may be strings of digits or integers.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

from convhub.wire.kinds import Digits, Doc, FreeReference, Minimum, Reference, Width

PositiveId = Annotated[int, Digits(), Minimum(1), Doc("a positive ID, as a string of digits")]


class Nothing(TypedDict):
    """No query parameters, no body, or an empty ``data``."""


# --- answers --------------------------------------------------------------------------------------


class ConversationData(TypedDict):
    id: str
    name: str
    created_at: Annotated[int, Width(64), Doc("seconds")]
    updated_at: Annotated[int, Width(64), Doc("seconds")]
    meta_data: dict[str, str]
    last_section_id: str
    creator_id: str
    connector_id: str
    bot_id: str


class MessageData(TypedDict):
    id: str
    conversation_id: str
    section_id: str
    bot_id: str
    chat_id: str
    role: str
    type: str
    content: str
    content_type: str
    meta_data: dict[str, str]
    created_at: Annotated[int, Width(64), Doc("seconds")]
    updated_at: Annotated[int, Width(64), Doc("seconds")]
    reasoning_content: str


class ConversationAnswer(TypedDict):
    data: ConversationData


class ConversationPage(TypedDict):
    conversations: list[ConversationData]
    has_more: bool


class ConversationListAnswer(TypedDict):
    data: ConversationPage


class NothingAnswer(TypedDict):
    data: Nothing


class Section(TypedDict):
    id: str
    conversation_id: str


class SectionAnswer(TypedDict):
    data: Section


class MessageAnswer(TypedDict):
    data: MessageData


class ModifiedMessageAnswer(TypedDict):
    """Modify answers its message under ``message``, where cozepy reads it."""

    message: MessageData


class MessageListAnswer(TypedDict):
    data: list[MessageData]
    first_id: str
    last_id: str
    has_more: bool


# --- queries and bodies ---------------------------------------------------------------------------


class ConversationQuery(TypedDict):
    conversation_id: PositiveId


class MessageQuery(TypedDict):
    conversation_id: PositiveId
    message_id: PositiveId


class ListConversationsQuery(TypedDict):
    bot_id: str
    page_num: NotRequired[Annotated[int, Width(32), Minimum(0), Doc("from 1 (default 1)")]]
    page_size: NotRequired[Annotated[int, Width(32), Minimum(0), Doc("1 to 50 (default 50)")]]
    sort_order: NotRequired[Annotated[str, Doc("ASC or DESC (default)")]]
    connector_id: NotRequired[Annotated[str, Doc("default 1024, the API channel")]]


Role = Literal["user", "assistant"]


class EnterMessage(TypedDict):
    role: Role
    content: NotRequired[str]
    content_type: NotRequired[Annotated[str, Doc("text (default) or object_string")]]
    meta_data: NotRequired[dict[str, str]]
    type: NotRequired[str]


class CreateConversationBody(TypedDict):
    bot_id: NotRequired[FreeReference]
    name: NotRequired[str]
    meta_data: NotRequired[dict[str, str]]
    connector_id: NotRequired[Annotated[str, Reference(), Doc("default 1024, the API channel")]]
    messages: NotRequired[list[EnterMessage]]


class RenameConversationBody(TypedDict):
    name: NotRequired[str]


class CreateMessageBody(TypedDict):
    role: Role
    content: str
    content_type: NotRequired[Annotated[str, Doc("text (default) or object_string")]]
    meta_data: NotRequired[dict[str, str]]


class ListMessagesBody(TypedDict):
    order: NotRequired[Annotated[str, Doc("asc or desc (default)")]]
    chat_id: NotRequired[FreeReference]
    before_id: NotRequired[Annotated[int, Digits(), Doc("a message ID; 0 or empty: none")]]
    after_id: NotRequired[Annotated[int, Digits(), Doc("a message ID; 0 or empty: none")]]
    limit: NotRequired[Annotated[int, Width(32), Doc("1 to 50 (default 50)")]]


class ModifyMessageBody(TypedDict):
    content: NotRequired[str]
    content_type: NotRequired[str]
    meta_data: NotRequired[Annotated[dict[str, str], Doc("replaces the message's")]]


class FeedbackBody(TypedDict):
    feedback_type: Literal["like", "unlike"]
    reason_types: NotRequired[list[str]]
    comment: NotRequired[str]
