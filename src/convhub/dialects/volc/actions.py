"""The Volcengine actions, each declared once: its name, QPS and summary with its handler.

A handler reads the body into a command, calls the core as the authenticated caller, and shapes
``Result``. Routing, rate limits and the README's action table all follow from ``ACTIONS``.
To add an action: write one decorated handler here, its service method, and its repository
method if it needs a new query.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from convhub.dialects.volc import codec
from convhub.dialects.volc.codec import INT32, Body
from convhub.domain import commands
from convhub.domain.caller import Caller
from convhub.domain.services import Services
from convhub.errors import ConvhubError, ErrorCode

VERSION = "2020-12-01"

Handler = Callable[[Services, Caller, Body], Awaitable[Body]]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    handler: Handler
    qps: int  # per account, the QPS its Volcengine page documents
    summary: str


ACTIONS: dict[str, Action] = {}


def action(name: str, *, qps: int, summary: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in ACTIONS:
            raise ValueError(f"action {name} is declared twice")
        ACTIONS[name] = Action(name, handler, qps, summary)
        return handler

    return register


def _app_id(body: Body) -> int:
    value = codec.integer(body, "AppId", width=INT32, required=True)
    assert value is not None
    return value


def _conversation_id(body: Body) -> int:
    value = codec.integer(body, "ConversationShortId", required=True)
    assert value is not None
    if value <= 0:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "ConversationShortId must be positive")
    return value


@action("CreateConversation", qps=50, summary="single chat (1), group (2) or live group (100)")
async def create_conversation(services: Services, caller: Caller, body: Body) -> Body:
    core = codec.obj(body, "ConversationCoreInfo", required=True)
    assert core is not None
    kind = codec.integer(core, "ConversationType", width=INT32, required=True)
    assert kind is not None
    owner = codec.user(body, "OwnerUserId")
    if owner is None:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "OwnerUserId is required and must be positive")
    command = commands.CreateConversation(
        app_id=_app_id(body),
        owner=owner,
        other=codec.user(body, "OtherUserId"),
        type=kind,
        inbox_type=codec.integer(body, "InboxType", width=INT32) or 0,
        idempotent_id=codec.string(body, "IdempotentId"),
        name=codec.string(core, "Name"),
        avatar_url=codec.string(core, "AvatarUrl"),
        description=codec.string(core, "Description"),
        notice=codec.string(core, "Notice"),
        ext=codec.string_map(core, "Ext"),
    )
    created = await services.conversations.create_conversation(caller, command)
    conversation = created.conversation
    return {
        "ConversationShortId": conversation.id,
        "ConversationId": str(conversation.id),
        "Exist": created.exist,
        "ConversationInfo": codec.conversation_info(conversation, member_count=True),
    }


@action("ModifyConversation", qps=50, summary="change the fields sent, transfer the owner")
async def modify_conversation(services: Services, caller: Caller, body: Body) -> Body:
    app_id = _app_id(body)
    core = codec.obj(body, "ConversationCoreInfo", required=True)
    assert core is not None
    command = commands.ModifyConversation(
        app_id=app_id,
        conversation_id=_conversation_id(core),
        name=codec.string(core, "Name"),
        avatar_url=codec.string(core, "AvatarUrl"),
        description=codec.string(core, "Description"),
        notice=codec.string(core, "Notice"),
        ext=codec.string_map(core, "Ext"),
        owner=codec.user(core, "OwnerUserId"),
    )
    await services.conversations.modify_conversation(caller, command)
    return {}


@action("BatchGetConversations", qps=100, summary="up to 100 conversations by ID")
async def batch_get_conversations(services: Services, caller: Caller, body: Body) -> Body:
    app_id = _app_id(body)
    ids = codec.integer_list(body, "ConversationShortId", required=True)
    skip = codec.boolean(body, "SkipMemberCount")
    found = await services.conversations.batch_get_conversations(caller, app_id, tuple(ids))
    with_count = skip is False  # the page's default is true: counts only when asked for
    return {
        "ConversationCoreInfos": [
            codec.conversation_info(c, member_count=with_count) for c in found
        ]
    }


def markdown_table() -> str:
    """The README's action table, from the declarations."""
    rows = ["| Action | QPS per account | what it does |", "|---|---|---|"]
    rows += [f"| `{a.name}` | {a.qps} | {a.summary} |" for a in ACTIONS.values()]
    return "\n".join(rows)


__all__ = ["ACTIONS", "VERSION", "Action", "markdown_table"]
