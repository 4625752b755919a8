"""The Coze endpoints, each declared once: method, path, operation, permission, QPS and summary
with its handler. Routing, permissions, rate limits and the README's endpoint table all follow
from ``ENDPOINTS``.

A handler reads query, path and body into core calls and shapes the answer.

A handler returns the part of the envelope after ``code``, ``msg`` and ``detail``: ``{"data": …}``
for most, ``{"message": …}`` for modify (where cozepy reads it), and the top-level ``data``,
``first_id``, ``last_id`` and ``has_more`` of the message list.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from convhub.dialects.coze import codec
from convhub.dialects.coze.codec import Body, Query
from convhub.domain.caller import Caller
from convhub.domain.commands import CreateConversation, ModifyConversation, NewMessage
from convhub.domain.limits import SEND_RATE
from convhub.domain.permissions import Permission
from convhub.domain.services import Services
from convhub.errors import ConvhubError

API_CONNECTOR = "1024"  # Coze's connector ID of the API channel, the default everywhere
GROUP = 2  # a Coze conversation is kept as a group conversation with its creator as owner


@dataclass(frozen=True, slots=True)
class Request:
    caller: Caller
    app_id: int  # the app the token acts in
    path: tuple[str, ...]  # the path segments that the route's ":name" parts matched
    query: Query
    body: Body  # {} for an endpoint without a body


Handler = Callable[[Services, Request], Awaitable[Body]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # "/v1/conversations/:conversation_id"; a ":name" part matches one segment
    operation: str  # counted by the limiter as "coze:<operation>"
    handler: Handler
    permission: Permission
    qps: int  # per account; Coze publishes none: convhub holds writes to 50, reads to 100
    reads_body: bool
    summary: str
    also_counts: tuple[str, ...] = ()  # account-wide limits it counts toward (SEND_RATE)


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
    reads_body: bool = False,
    also_counts: tuple[str, ...] = (),
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if any(e.operation == operation for e in ENDPOINTS):
            raise ValueError(f"operation {operation} is declared twice")
        ENDPOINTS.append(
            Endpoint(
                method,
                path,
                operation,
                handler,
                permission,
                qps,
                reads_body,
                summary,
                also_counts,
            )
        )
        return handler

    return register


# --- conversations --------------------------------------------------------------------------------


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


@endpoint(
    "POST",
    "/v1/conversation/create",
    operation="CreateConversation",
    permission=Permission.CREATE_CONVERSATION,
    qps=WRITE_QPS,
    reads_body=True,
    summary="bot_id, name (≤ 100), meta_data, connector_id (default 1024), initial messages",
)
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
        app_id=request.app_id,
        owner=caller.user,
        other=None,
        type=GROUP,
        name=name,
        meta_data=meta_data,
        bot_id=bot_id,
        connector_id=connector_id or API_CONNECTOR,
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
async def retrieve_conversation(services: Services, request: Request) -> Body:
    conversation_id = codec.query_id(request.query, "conversation_id")
    found = await services.conversations.get_conversation(
        request.caller, request.app_id, conversation_id
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
        request.app_id,
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


@endpoint(
    "PUT",
    "/v1/conversations/:conversation_id",
    operation="UpdateConversation",
    permission=Permission.EDIT_CONVERSATION,
    qps=WRITE_QPS,
    reads_body=True,
    summary="rename",
)
async def rename_conversation(services: Services, request: Request) -> Body:
    conversation_id = codec.path_id(request.path[0], "conversation_id")
    name = codec.string(request.body, "name")
    command = ModifyConversation(app_id=request.app_id, conversation_id=conversation_id, name=name)
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
async def delete_conversation(services: Services, request: Request) -> Body:
    conversation_id = codec.path_id(request.path[0], "conversation_id")
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
async def clear_conversation(services: Services, request: Request) -> Body:
    conversation_id = codec.path_id(request.path[0], "conversation_id")
    section_id = await services.conversations.clear_conversation(
        request.caller, request.app_id, conversation_id
    )
    return {"data": {"id": str(section_id), "conversation_id": str(conversation_id)}}


# --- messages -------------------------------------------------------------------------------------


def _message_ids(request: Request) -> tuple[int, int]:
    return (
        codec.query_id(request.query, "conversation_id"),
        codec.query_id(request.query, "message_id"),
    )


@endpoint(
    "POST",
    "/v1/conversation/message/create",
    operation="CreateMessage",
    permission=Permission.CREATE_MESSAGE,
    qps=WRITE_QPS,
    reads_body=True,
    also_counts=(SEND_RATE,),
    summary="role user/assistant, content, content_type text/object_string, meta_data",
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
    created = await services.messages.create_message(
        request.caller, request.app_id, conversation_id, new
    )
    return {"data": codec.message(created)}


_MESSAGE_ORDERS = {"asc": False, "desc": True}


@endpoint(
    "POST",
    "/v1/conversation/message/list",
    operation="ListMessages",
    permission=Permission.LIST_MESSAGE,
    qps=READ_QPS,
    reads_body=True,
    summary="order (desc), before_id, after_id, limit 1-50; `first_id`, `last_id`, `has_more`",
)
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
        request.app_id,
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


@endpoint(
    "GET",
    "/v1/conversation/message/retrieve",
    operation="RetrieveMessage",
    permission=Permission.RETRIEVE_MESSAGE,
    qps=READ_QPS,
    summary="one message (`?conversation_id=&message_id=`)",
)
async def retrieve_message(services: Services, request: Request) -> Body:
    conversation_id, message_id = _message_ids(request)
    found = await services.messages.get_message(
        request.caller, request.app_id, conversation_id, message_id
    )
    return {"data": codec.message(found)}


@endpoint(
    "POST",
    "/v1/conversation/message/modify",
    operation="ModifyMessage",
    permission=Permission.MODIFY_MESSAGE,
    qps=WRITE_QPS,
    reads_body=True,
    summary="content, content_type, meta_data (replaces it); answered under `message`",
)
async def modify_message(services: Services, request: Request) -> Body:
    conversation_id, message_id = _message_ids(request)
    body = request.body
    modified = await services.messages.modify_message(
        request.caller,
        request.app_id,
        conversation_id,
        message_id,
        content=codec.string(body, "content"),
        content_type=codec.string(body, "content_type"),
        meta_data=codec.meta_data(body),
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
async def delete_message(services: Services, request: Request) -> Body:
    conversation_id, message_id = _message_ids(request)
    deleted = await services.messages.delete_message(
        request.caller, request.app_id, conversation_id, message_id
    )
    return {"data": codec.message(deleted)}


def _feedback_ids(request: Request) -> tuple[int, int]:
    return (
        codec.path_id(request.path[0], "conversation_id"),
        codec.path_id(request.path[1], "message_id"),
    )


@endpoint(
    "POST",
    "/v1/conversations/:conversation_id/messages/:message_id/feedback",
    operation="CreateMessageFeedback",
    permission=Permission.MESSAGE_FEEDBACK,
    qps=WRITE_QPS,
    reads_body=True,
    summary="like/unlike with reasons and a comment, one per user and message",
)
async def create_feedback(services: Services, request: Request) -> Body:
    conversation_id, message_id = _feedback_ids(request)
    body = request.body
    await services.messages.set_feedback(
        request.caller,
        request.app_id,
        conversation_id,
        message_id,
        feedback_type=_required_string(body, "feedback_type"),
        reason_types=codec.string_list(body, "reason_types"),
        comment=codec.string(body, "comment"),
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
async def delete_feedback(services: Services, request: Request) -> Body:
    conversation_id, message_id = _feedback_ids(request)
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
