"""One function per Volcengine action: read the body into a command, call the core, shape Result."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from convhub.dialects.volc import codec
from convhub.dialects.volc.codec import INT32, Body
from convhub.domain import commands
from convhub.domain.access import Caller
from convhub.domain.conversations import ConversationService
from convhub.errors import ConvhubError, ErrorCode

VERSION = "2020-12-01"
Handler = Callable[[ConversationService, Caller, Body], Awaitable[Body]]


def _app_id(body: Body) -> int:
    value = codec.integer(body, "AppId", width=INT32, required=True)
    assert value is not None
    return value


async def create_conversation(service: ConversationService, caller: Caller, body: Body) -> Body:
    core = codec.obj(body, "ConversationCoreInfo", required=True)
    assert core is not None
    kind = codec.integer(core, "ConversationType", width=INT32, required=True)
    assert kind is not None
    owner = codec.user(body, "OwnerUserId")
    if owner is None:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "OwnerUserId is required and must be positive")
    command = commands.CreateConversation(
        account_id=caller.account_id,
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
    created = await service.create_conversation(command)
    conversation = created.conversation
    return {
        "ConversationShortId": conversation.id,
        "ConversationId": str(conversation.id),
        "Exist": created.exist,
        "ConversationInfo": codec.conversation_info(conversation, member_count=True),
    }


async def modify_conversation(service: ConversationService, caller: Caller, body: Body) -> Body:
    app_id = _app_id(body)
    core = codec.obj(body, "ConversationCoreInfo", required=True)
    assert core is not None
    conversation_id = codec.integer(core, "ConversationShortId", required=True)
    assert conversation_id is not None
    if conversation_id <= 0:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "ConversationShortId must be positive")
    await service.modify_conversation(
        commands.ModifyConversation(
            account_id=caller.account_id,
            app_id=app_id,
            conversation_id=conversation_id,
            name=codec.string(core, "Name"),
            avatar_url=codec.string(core, "AvatarUrl"),
            description=codec.string(core, "Description"),
            notice=codec.string(core, "Notice"),
            ext=codec.string_map(core, "Ext"),
            owner=codec.user(core, "OwnerUserId"),
        )
    )
    return {}


async def batch_get_conversations(service: ConversationService, caller: Caller, body: Body) -> Body:
    app_id = _app_id(body)
    ids = codec.integer_list(body, "ConversationShortId", required=True)
    skip = codec.boolean(body, "SkipMemberCount")
    found = await service.batch_get_conversations(
        commands.BatchGetConversations(
            account_id=caller.account_id, app_id=app_id, conversation_ids=tuple(ids)
        )
    )
    with_count = skip is False  # the page's default is true: counts only when asked for
    return {
        "ConversationCoreInfos": [
            codec.conversation_info(c, member_count=with_count) for c in found
        ]
    }


ACTIONS: dict[str, Handler] = {
    "CreateConversation": create_conversation,
    "ModifyConversation": modify_conversation,
    "BatchGetConversations": batch_get_conversations,
}

__all__ = ["ACTIONS", "VERSION"]
