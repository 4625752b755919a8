"""One function per Coze endpoint: read query, path and body into core calls, shape the answer.

A handler returns the part of the envelope after ``code``, ``msg`` and ``detail``: ``{"data": …}``
for most, ``{"message": …}`` for modify (where cozepy reads it), and the top-level ``data``,
``first_id``, ``last_id`` and ``has_more`` of the message list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from convhub.dialects.coze import codec
from convhub.dialects.coze.codec import Body, Query
from convhub.domain.access import Caller
from convhub.domain.commands import CreateConversation, NewMessage
from convhub.domain.conversations import ConversationService
from convhub.domain.messages import MessageService
from convhub.errors import ConvhubError, ErrorCode

API_CONNECTOR = "1024"  # Coze's connector ID of the API channel, the default everywhere
GROUP = 2  # a Coze conversation is kept as a group conversation with its creator as owner


@dataclass(frozen=True, slots=True)
class Services:
    conversations: ConversationService
    messages: MessageService


@dataclass(frozen=True, slots=True)
class Request:
    caller: Caller
    path: tuple[str, ...]  # the path segments that the route's wildcards matched
    query: Query
    body: Body  # {} for an endpoint without a body


Handler = Callable[[Services, Request], Awaitable[Body]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    operation: str  # counted by the limiter as "coze:<operation>"
    handler: Handler
    reads_body: bool


# --- conversations --------------------------------------------------------------------------------


def _app_id(caller: Caller) -> int:
    if caller.app_id is None:
        raise ConvhubError(ErrorCode.INVALID_TOKEN, "the token acts in no app")
    return caller.app_id


def _enter_message(index: int, item: Body) -> NewMessage:
    try:
        return NewMessage(
            role=_required_string(item, "role"),
            content=codec.string(item, "content") or "",
            content_type=codec.string(item, "content_type") or "text",
            meta_data=codec.meta_data(item),
            type=codec.string(item, "type") or None,
        )
    except ConvhubError as error:
        raise ConvhubError(error.code, f"messages[{index}]: {error.message}") from None


def _required_string(body: Body, name: str) -> str:
    value = codec.string(body, name, required=True)
    assert value is not None
    return value


async def create_conversation(services: Services, request: Request) -> Body:
    body, caller = request.body, request.caller
    name = codec.string(body, "name")
    bot_id = codec.reference(body, "bot_id")
    connector_id = codec.reference(body, "connector_id")
    meta_data = codec.meta_data(body)
    messages = tuple(
        _enter_message(index, item)
        for index, item in enumerate(codec.object_list(body, "messages"))
    )
    command = CreateConversation(
        account_id=caller.account_id,
        app_id=_app_id(caller),
        owner=caller.user,
        other=None,
        type=GROUP,
        name=name,
        meta_data=meta_data,
        bot_id=bot_id,
        connector_id=connector_id or API_CONNECTOR,
        messages=messages,
    )
    created = await services.conversations.create_conversation(command, caller=caller)
    return {"data": codec.conversation(created.conversation)}


async def retrieve_conversation(services: Services, request: Request) -> Body:
    conversation_id = codec.query_id(request.query, "conversation_id")
    found = await services.conversations.get_conversation(request.caller, conversation_id)
    return {"data": codec.conversation(found)}


_SORT_ORDERS = {"ASC": False, "DESC": True}


async def list_conversations(services: Services, request: Request) -> Body:
    query = request.query
    bot_id = codec.query_value(query, "bot_id", required=True)
    assert bot_id is not None
    page_num = codec.query_int(query, "page_num", default=1)
    page_size = codec.query_int(query, "page_size", default=50)
    sort_order = codec.query_value(query, "sort_order") or "DESC"
    descending = _SORT_ORDERS.get(sort_order.upper())
    if descending is None:
        raise codec.bad("sort_order must be ASC or DESC")
    connector_id = codec.query_value(query, "connector_id") or API_CONNECTOR
    found, has_more = await services.conversations.list_conversations(
        request.caller,
        bot_id=bot_id,
        page_num=page_num,
        page_size=page_size,
        descending=descending,
        connector_id=connector_id,
    )
    return {
        "data": {
            "conversations": [codec.conversation(c) for c in found],
            "has_more": has_more,
        }
    }


async def rename_conversation(services: Services, request: Request) -> Body:
    conversation_id = codec.path_id(request.path[0], "conversation_id")
    name = codec.string(request.body, "name")
    renamed = await services.conversations.rename_conversation(
        request.caller, conversation_id, name
    )
    return {"data": codec.conversation(renamed)}


async def delete_conversation(services: Services, request: Request) -> Body:
    conversation_id = codec.path_id(request.path[0], "conversation_id")
    await services.conversations.delete_conversation(request.caller, conversation_id)
    return {"data": {}}


async def clear_conversation(services: Services, request: Request) -> Body:
    conversation_id = codec.path_id(request.path[0], "conversation_id")
    section_id = await services.conversations.clear_conversation(request.caller, conversation_id)
    return {"data": {"id": str(section_id), "conversation_id": str(conversation_id)}}


# --- messages -------------------------------------------------------------------------------------


def _message_ids(request: Request) -> tuple[int, int]:
    return (
        codec.query_id(request.query, "conversation_id"),
        codec.query_id(request.query, "message_id"),
    )


async def create_message(services: Services, request: Request) -> Body:
    conversation_id = codec.query_id(request.query, "conversation_id")
    body = request.body
    new = NewMessage(
        role=_required_string(body, "role"),
        content=_required_string(body, "content"),
        content_type=codec.string(body, "content_type") or "text",
        meta_data=codec.meta_data(body),
    )
    created = await services.messages.create_message(request.caller, conversation_id, new)
    return {"data": codec.message(created)}


_MESSAGE_ORDERS = {"asc": False, "desc": True}


async def list_messages(services: Services, request: Request) -> Body:
    conversation_id = codec.query_id(request.query, "conversation_id")
    body = request.body
    order = codec.string(body, "order") or "desc"
    descending = _MESSAGE_ORDERS.get(order.lower())
    if descending is None:
        raise codec.bad("order must be asc or desc")
    limit = codec.integer(body, "limit")
    page = await services.messages.list_messages(
        request.caller,
        conversation_id,
        descending=descending,
        chat_id=codec.reference(body, "chat_id") or None,
        before_id=codec.identifier(body, "before_id"),
        after_id=codec.identifier(body, "after_id"),
        limit=50 if limit is None else limit,
    )
    return {
        "data": [codec.message(m) for m in page.messages],
        "first_id": page.first_id,
        "last_id": page.last_id,
        "has_more": page.has_more,
    }


async def retrieve_message(services: Services, request: Request) -> Body:
    conversation_id, message_id = _message_ids(request)
    found = await services.messages.get_message(request.caller, conversation_id, message_id)
    return {"data": codec.message(found)}


async def modify_message(services: Services, request: Request) -> Body:
    conversation_id, message_id = _message_ids(request)
    body = request.body
    modified = await services.messages.modify_message(
        request.caller,
        conversation_id,
        message_id,
        content=codec.string(body, "content"),
        content_type=codec.string(body, "content_type"),
        meta_data=codec.meta_data(body),
    )
    return {"message": codec.message(modified)}


async def delete_message(services: Services, request: Request) -> Body:
    conversation_id, message_id = _message_ids(request)
    deleted = await services.messages.delete_message(request.caller, conversation_id, message_id)
    return {"data": codec.message(deleted)}


def _feedback_ids(request: Request) -> tuple[int, int]:
    return (
        codec.path_id(request.path[0], "conversation_id"),
        codec.path_id(request.path[1], "message_id"),
    )


async def create_feedback(services: Services, request: Request) -> Body:
    conversation_id, message_id = _feedback_ids(request)
    body = request.body
    await services.messages.set_feedback(
        request.caller,
        conversation_id,
        message_id,
        feedback_type=_required_string(body, "feedback_type"),
        reason_types=codec.string_list(body, "reason_types"),
        comment=codec.string(body, "comment"),
    )
    return {"data": {}}


async def delete_feedback(services: Services, request: Request) -> Body:
    conversation_id, message_id = _feedback_ids(request)
    await services.messages.delete_feedback(request.caller, conversation_id, message_id)
    return {"data": {}}


# --- routes ---------------------------------------------------------------------------------------

# A route is its path split at "/"; "*" matches one non-empty segment, handed to the handler.
ROUTES: dict[tuple[str, ...], dict[str, Endpoint]] = {
    ("v1", "conversation", "create"): {
        "POST": Endpoint("CreateConversation", create_conversation, reads_body=True),
    },
    ("v1", "conversation", "retrieve"): {
        "GET": Endpoint("RetrieveConversation", retrieve_conversation, reads_body=False),
    },
    ("v1", "conversations"): {
        "GET": Endpoint("ListConversations", list_conversations, reads_body=False),
    },
    ("v1", "conversations", "*"): {
        "PUT": Endpoint("UpdateConversation", rename_conversation, reads_body=True),
        "DELETE": Endpoint("DeleteConversation", delete_conversation, reads_body=False),
    },
    ("v1", "conversations", "*", "clear"): {
        "POST": Endpoint("ClearConversation", clear_conversation, reads_body=False),
    },
    ("v1", "conversation", "message", "create"): {
        "POST": Endpoint("CreateMessage", create_message, reads_body=True),
    },
    ("v1", "conversation", "message", "list"): {
        "POST": Endpoint("ListMessages", list_messages, reads_body=True),
    },
    ("v1", "conversation", "message", "retrieve"): {
        "GET": Endpoint("RetrieveMessage", retrieve_message, reads_body=False),
    },
    ("v1", "conversation", "message", "modify"): {
        "POST": Endpoint("ModifyMessage", modify_message, reads_body=True),
    },
    ("v1", "conversation", "message", "delete"): {
        "POST": Endpoint("DeleteMessage", delete_message, reads_body=False),
    },
    ("v1", "conversations", "*", "messages", "*", "feedback"): {
        "POST": Endpoint("CreateMessageFeedback", create_feedback, reads_body=True),
        "DELETE": Endpoint("DeleteMessageFeedback", delete_feedback, reads_body=False),
    },
}

OPERATIONS: frozenset[str] = frozenset(
    "coze:" + endpoint.operation for methods in ROUTES.values() for endpoint in methods.values()
)


def match(path: str) -> tuple[dict[str, Endpoint], tuple[str, ...]] | None:
    """The endpoints of the route that ``path`` names and the segments its wildcards matched."""
    segments = tuple(path.split("/")[1:]) if path.startswith("/") else ()
    exact = ROUTES.get(segments)
    if exact is not None and "*" not in segments:
        return exact, ()
    for pattern, endpoints in ROUTES.items():
        if len(pattern) != len(segments) or "*" not in pattern:
            continue
        captured: list[str] = []
        for want, got in zip(pattern, segments, strict=True):
            if want == "*":
                if not got:
                    break
                captured.append(got)
            elif want != got:
                break
        else:
            return endpoints, tuple(captured)
    return None


__all__ = ["OPERATIONS", "ROUTES", "Endpoint", "Request", "Services", "match"]
