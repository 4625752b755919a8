"""The Coze endpoints, each declared once: method, path, operation, permission, QPS and summary
with its handler. Routing, permissions, rate limits, the README's endpoint table and the OpenAPI
document all follow from ``ENDPOINTS``.

A handler's signature names the declarations (``convhub.wire.coze``) of its query parameters, its
body and its answer: the dispatcher reads the query string and the body through readers compiled
from them, so the handler only applies the rules a declaration cannot say. The answer is the part
of the envelope after ``code``, ``msg`` and ``detail``: ``{"data": …}`` for most, ``{"message": …}``
for modify (where cozepy reads it), and the top-level ``data``, ``first_id``, ``last_id`` and
``has_more`` of the message list.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from convhub.dialects.coze import codec
from convhub.dialects.coze.codec import Body, Query
from convhub.dialects.fields import reader
from convhub.domain.caller import Caller
from convhub.domain.commands import CreateConversation, ModifyConversation, NewMessage
from convhub.domain.limits import SEND_RATE
from convhub.domain.permissions import Permission
from convhub.domain.services import Services
from convhub.wire.coze import (
    ConversationAnswer,
    ConversationListAnswer,
    ConversationQuery,
    CreateConversationBody,
    CreateMessageBody,
    FeedbackBody,
    ListConversationsQuery,
    ListMessagesBody,
    MessageAnswer,
    MessageListAnswer,
    MessageQuery,
    ModifiedMessageAnswer,
    ModifyMessageBody,
    Nothing,
    NothingAnswer,
    RenameConversationBody,
    SectionAnswer,
)

API_CONNECTOR = "1024"  # Coze's connector ID of the API channel, the default everywhere
GROUP = 2  # a Coze conversation is kept as a group conversation with its creator as owner


@dataclass(frozen=True, slots=True)
class Request:
    caller: Caller
    app_id: int  # the app the token acts in
    path: tuple[str, ...]  # the path segments that the route's ":name" parts matched


Handler = Callable[[Services, Request, Any, Any], Awaitable[Mapping[str, Any]]]
H = TypeVar("H", bound=Handler)


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # "/v1/conversations/:conversation_id"; a ":name" part matches one segment
    operation: str  # counted by the limiter as "coze:<operation>"
    handler: Handler
    permission: Permission
    qps: int  # per account; Coze publishes none: convhub holds writes to 50, reads to 100
    summary: str
    query: type | None  # the TypedDict its query string is read as; None: it reads none
    body: type | None  # the TypedDict its JSON body is read as; None: it reads none
    answer: type  # the TypedDict of its answer
    read_query: Callable[[Query], Any]
    read_body: Callable[[Body], Any]
    also_counts: tuple[str, ...] = ()  # account-wide limits it counts toward (SEND_RATE)

    @property
    def reads_body(self) -> bool:
        return self.body is not None


ENDPOINTS: list[Endpoint] = []
WRITE_QPS, READ_QPS = 50, 100


def endpoint(
    method: str,
    path: str,
    *,
    operation: str,
    permission: Permission,
    qps: int,
    summary: str,
    also_counts: tuple[str, ...] = (),
) -> Callable[[H], H]:
    def register(handler: H) -> H:
        if any(e.operation == operation for e in ENDPOINTS):
            raise ValueError(f"operation {operation} is declared twice")
        hints = typing.get_type_hints(handler)
        query = None if hints["query"] is Nothing else hints["query"]
        body = None if hints["body"] is Nothing else hints["body"]
        ENDPOINTS.append(
            Endpoint(
                method,
                path,
                operation,
                handler,
                permission,
                qps,
                summary,
                query,
                body,
                hints["return"],
                codec.query_reader(query or Nothing),
                reader(body or Nothing),
                also_counts,
            )
        )
        return handler

    return register


def _path_ids(request: Request) -> tuple[int, ...]:
    names = ("conversation_id", "message_id")
    return tuple(codec.path_id(segment, n) for segment, n in zip(request.path, names, strict=False))


# --- conversations --------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/v1/conversation/create",
    operation="CreateConversation",
    permission=Permission.CREATE_CONVERSATION,
    qps=WRITE_QPS,
    summary="bot_id, name (≤ 100), meta_data, connector_id (default 1024), initial messages",
)
async def create_conversation(
    services: Services, request: Request, query: Nothing, body: CreateConversationBody
) -> ConversationAnswer:
    caller = request.caller
    messages = tuple(
        NewMessage(
            role=item["role"],
            content=item.get("content") or "",
            content_type=item.get("content_type") or "text",
            meta_data=item.get("meta_data"),
            type=item.get("type") or None,
        )
        for item in body.get("messages") or ()
    )
    command = CreateConversation(
        app_id=request.app_id,
        owner=caller.user,
        other=None,
        type=GROUP,
        name=body.get("name"),
        meta_data=body.get("meta_data"),
        bot_id=body.get("bot_id"),
        connector_id=body.get("connector_id") or API_CONNECTOR,
        messages=messages,
    )
    created = await services.conversations.create_conversation(caller, command)
    return {"data": codec.conversation(created.conversation)}


@endpoint(
    "GET",
    "/v1/conversation/retrieve",
    operation="RetrieveConversation",
    permission=Permission.RETRIEVE_CONVERSATION,
    qps=READ_QPS,
    summary="one conversation (`?conversation_id=`)",
)
async def retrieve_conversation(
    services: Services, request: Request, query: ConversationQuery, body: Nothing
) -> ConversationAnswer:
    found = await services.conversations.get_conversation(
        request.caller, request.app_id, query["conversation_id"]
    )
    return {"data": codec.conversation(found)}


_SORT_ORDERS = {"ASC": False, "DESC": True}


@endpoint(
    "GET",
    "/v1/conversations",
    operation="ListConversations",
    permission=Permission.LIST_CONVERSATION,
    qps=READ_QPS,
    summary="the caller's conversations with a bot (`?bot_id=&page_num=&page_size=&sort_order="
    "&connector_id=`), newest first by default, pages of ≤ 50, `has_more`",
)
async def list_conversations(
    services: Services, request: Request, query: ListConversationsQuery, body: Nothing
) -> ConversationListAnswer:
    descending = _SORT_ORDERS.get((query.get("sort_order") or "DESC").upper())
    if descending is None:
        raise codec.bad("sort_order must be ASC or DESC")
    found, has_more = await services.conversations.list_conversations(
        request.caller,
        request.app_id,
        bot_id=query["bot_id"],
        page_num=query.get("page_num", 1),
        page_size=query.get("page_size", 50),
        descending=descending,
        connector_id=query.get("connector_id") or API_CONNECTOR,
    )
    return {
        "data": {
            "conversations": [codec.conversation(c) for c in found],
            "has_more": has_more,
        }
    }


@endpoint(
    "PUT",
    "/v1/conversations/:conversation_id",
    operation="UpdateConversation",
    permission=Permission.EDIT_CONVERSATION,
    qps=WRITE_QPS,
    summary="rename",
)
async def rename_conversation(
    services: Services, request: Request, query: Nothing, body: RenameConversationBody
) -> ConversationAnswer:
    (conversation_id,) = _path_ids(request)
    command = ModifyConversation(
        app_id=request.app_id, conversation_id=conversation_id, name=body.get("name")
    )
    renamed = await services.conversations.modify_conversation(request.caller, command)
    return {"data": codec.conversation(renamed)}


@endpoint(
    "DELETE",
    "/v1/conversations/:conversation_id",
    operation="DeleteConversation",
    permission=Permission.EDIT_CONVERSATION,
    qps=WRITE_QPS,
    summary="delete: dissolves it, for both dialects (its messages stay stored)",
)
async def delete_conversation(
    services: Services, request: Request, query: Nothing, body: Nothing
) -> NothingAnswer:
    (conversation_id,) = _path_ids(request)
    caller = request.caller
    await services.conversations.destroy_conversation(
        caller, request.app_id, conversation_id, owner=services.policy.user(caller)
    )
    return {"data": {}}


@endpoint(
    "POST",
    "/v1/conversations/:conversation_id/clear",
    operation="ClearConversation",
    permission=Permission.EDIT_CONVERSATION,
    qps=WRITE_QPS,
    summary="new context section; messages kept; `last_section_id` moves",
)
async def clear_conversation(
    services: Services, request: Request, query: Nothing, body: Nothing
) -> SectionAnswer:
    (conversation_id,) = _path_ids(request)
    section_id = await services.conversations.clear_conversation(
        request.caller, request.app_id, conversation_id
    )
    return {"data": {"id": str(section_id), "conversation_id": str(conversation_id)}}


# --- messages -------------------------------------------------------------------------------------


@endpoint(
    "POST",
    "/v1/conversation/message/create",
    operation="CreateMessage",
    permission=Permission.CREATE_MESSAGE,
    qps=WRITE_QPS,
    also_counts=(SEND_RATE,),
    summary="role user/assistant, content, content_type text/object_string, meta_data",
)
async def create_message(
    services: Services, request: Request, query: ConversationQuery, body: CreateMessageBody
) -> MessageAnswer:
    new = NewMessage(
        role=body["role"],
        content=body["content"],
        content_type=body.get("content_type") or "text",
        meta_data=body.get("meta_data"),
    )
    created = await services.messages.create_message(
        request.caller, request.app_id, query["conversation_id"], new
    )
    return {"data": codec.message(created)}


_MESSAGE_ORDERS = {"asc": False, "desc": True}


@endpoint(
    "POST",
    "/v1/conversation/message/list",
    operation="ListMessages",
    permission=Permission.LIST_MESSAGE,
    qps=READ_QPS,
    summary="order (desc), before_id, after_id, limit 1-50; `first_id`, `last_id`, `has_more`",
)
async def list_messages(
    services: Services, request: Request, query: ConversationQuery, body: ListMessagesBody
) -> MessageListAnswer:
    descending = _MESSAGE_ORDERS.get((body.get("order") or "desc").lower())
    if descending is None:
        raise codec.bad("order must be asc or desc")
    limit = body.get("limit")
    page = await services.messages.list_messages(
        request.caller,
        request.app_id,
        query["conversation_id"],
        descending=descending,
        chat_id=body.get("chat_id") or None,
        before_id=body.get("before_id"),
        after_id=body.get("after_id"),
        limit=50 if limit is None else limit,
    )
    return {
        "data": codec.page_messages(page.messages),
        "first_id": page.first_id,
        "last_id": page.last_id,
        "has_more": page.has_more,
    }


@endpoint(
    "GET",
    "/v1/conversation/message/retrieve",
    operation="RetrieveMessage",
    permission=Permission.RETRIEVE_MESSAGE,
    qps=READ_QPS,
    summary="one message (`?conversation_id=&message_id=`)",
)
async def retrieve_message(
    services: Services, request: Request, query: MessageQuery, body: Nothing
) -> MessageAnswer:
    found = await services.messages.get_message(
        request.caller, request.app_id, query["conversation_id"], query["message_id"]
    )
    return {"data": codec.message(found)}


@endpoint(
    "POST",
    "/v1/conversation/message/modify",
    operation="ModifyMessage",
    permission=Permission.MODIFY_MESSAGE,
    qps=WRITE_QPS,
    summary="content, content_type, meta_data (replaces it); answered under `message`",
)
async def modify_message(
    services: Services, request: Request, query: MessageQuery, body: ModifyMessageBody
) -> ModifiedMessageAnswer:
    modified = await services.messages.modify_message(
        request.caller,
        request.app_id,
        query["conversation_id"],
        query["message_id"],
        content=body.get("content"),
        content_type=body.get("content_type"),
        meta_data=body.get("meta_data"),
    )
    return {"message": codec.message(modified)}


@endpoint(
    "POST",
    "/v1/conversation/message/delete",
    operation="DeleteMessage",
    permission=Permission.DELETE_MESSAGE,
    qps=WRITE_QPS,
    summary="delete (hidden from everyone, kept stored); answers the deleted message",
)
async def delete_message(
    services: Services, request: Request, query: MessageQuery, body: Nothing
) -> MessageAnswer:
    deleted = await services.messages.delete_message(
        request.caller, request.app_id, query["conversation_id"], query["message_id"]
    )
    return {"data": codec.message(deleted)}


@endpoint(
    "POST",
    "/v1/conversations/:conversation_id/messages/:message_id/feedback",
    operation="CreateMessageFeedback",
    permission=Permission.MESSAGE_FEEDBACK,
    qps=WRITE_QPS,
    summary="like/unlike with reasons and a comment, one per user and message",
)
async def create_feedback(
    services: Services, request: Request, query: Nothing, body: FeedbackBody
) -> NothingAnswer:
    conversation_id, message_id = _path_ids(request)
    await services.messages.set_feedback(
        request.caller,
        request.app_id,
        conversation_id,
        message_id,
        feedback_type=body["feedback_type"],
        reason_types=body.get("reason_types"),
        comment=body.get("comment"),
    )
    return {"data": {}}


@endpoint(
    "DELETE",
    "/v1/conversations/:conversation_id/messages/:message_id/feedback",
    operation="DeleteMessageFeedback",
    permission=Permission.MESSAGE_FEEDBACK,
    qps=WRITE_QPS,
    summary="remove the caller's feedback",
)
async def delete_feedback(
    services: Services, request: Request, query: Nothing, body: Nothing
) -> NothingAnswer:
    conversation_id, message_id = _path_ids(request)
    await services.messages.delete_feedback(
        request.caller, request.app_id, conversation_id, message_id
    )
    return {"data": {}}


# --- routes ---------------------------------------------------------------------------------------


def _pattern(path: str) -> tuple[str, ...]:
    return tuple("*" if part.startswith(":") else part for part in path.split("/")[1:])


# A route is its path split at "/"; "*" matches one non-empty segment, handed to the handler.
ROUTES: dict[tuple[str, ...], dict[str, Endpoint]] = {}
for _endpoint in ENDPOINTS:
    ROUTES.setdefault(_pattern(_endpoint.path), {})[_endpoint.method] = _endpoint


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


def markdown_table() -> str:
    """The README's endpoint table, from the declarations."""
    rows = [
        "| method and path | permission | QPS per account | what it does |",
        "|---|---|---|---|",
    ]
    rows += [
        f"| `{e.method} {e.path}` | {e.permission.value} | {e.qps} | {e.summary} |"
        for e in ENDPOINTS
    ]
    return "\n".join(rows)


__all__ = ["ENDPOINTS", "ROUTES", "Endpoint", "Request", "markdown_table", "match"]
