"""The Volcengine actions, each declared once: its name, QPS and summary with its handler.

A handler's signature names its request and result declarations (``convhub.wire.volc``): the
dispatcher reads the body through the request's reader before the handler sees it, so a handler
only applies the rules the declaration cannot say. Routing, rate limits, the README's action table
and the OpenAPI document all follow from ``ACTIONS``. To add an action: declare its request and
result in ``convhub.wire.volc``, write one decorated handler here, its service method, and its
repository method if it needs a new query.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from convhub.dialects.fields import reader
from convhub.dialects.volc import codec
from convhub.dialects.volc.codec import Body
from convhub.domain import commands
from convhub.domain.caller import Caller
from convhub.domain.limits import SEND_RATE
from convhub.domain.participants import MemberChange
from convhub.domain.ports import UserOrder
from convhub.domain.services import Services
from convhub.domain.settings import ADD_MARKS, SettingChange
from convhub.domain.users import canonical_user, user_number
from convhub.errors import ConvhubError, ErrorCode
from convhub.wire.volc import (
    BatchAddConversationParticipantRequest,
    BatchDeleteConversationParticipantRequest,
    BatchGetConversationParticipantRequest,
    BatchGetConversationsRequest,
    BatchGetConversationsResult,
    BatchModifyConversationParticipantRequest,
    ConversationRequest,
    CreateConversationRequest,
    CreateConversationResult,
    DeleteConversationMessageRequest,
    DeleteMessageRequest,
    DestroyConversationRequest,
    Empty,
    FailedUsers,
    GetConversationMessagesRequest,
    GetConversationMessagesResult,
    GetConversationSettingRequest,
    GetConversationSettingResult,
    GetConversationUserCountResult,
    GetMessagesRequest,
    GetParticipantReadIndexResult,
    GetUserConversationsRequest,
    GetUserConversationsResult,
    IsUserInConversationRequest,
    IsUserInConversationResult,
    MarkConversationRequest,
    MarkTypes,
    Messages,
    ModifyConversationRequest,
    ModifyConversationSettingRequest,
    ModifyMessageRequest,
    ModifyParticipantReadIndexRequest,
    NewParticipantInfo,
    ParticipantInfoChange,
    Participants,
    RecallMessageRequest,
    ScanConversationParticipantListRequest,
    ScanConversationParticipantListResult,
    SendMessageRequest,
    SendMessageResult,
)

VERSION = "2020-12-01"

Handler = Callable[[Services, Caller, Any], Awaitable[Mapping[str, Any]]]
H = TypeVar("H", bound=Handler)

# A bad element of BatchGetConversations' ID list has a code of its own.
_ELEMENT_CODES = {"ConversationShortId": ErrorCode.INVALID_CONVERSATION_ID_ELEMENT}


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    handler: Handler
    qps: int  # per account, the QPS its Volcengine page documents
    summary: str
    request: type  # the TypedDict its body is read as
    result: type  # the TypedDict its Result is
    read: Callable[[Body], Any]
    also_counts: tuple[str, ...] = ()  # account-wide limits it counts toward (SEND_RATE)


ACTIONS: dict[str, Action] = {}


def action(
    name: str, *, qps: int, summary: str, also_counts: tuple[str, ...] = ()
) -> Callable[[H], H]:
    def register(handler: H) -> H:
        if name in ACTIONS:
            raise ValueError(f"action {name} is declared twice")
        hints = typing.get_type_hints(handler)
        request, result = hints["body"], hints["return"]
        read = reader(request, element_codes=_ELEMENT_CODES)
        ACTIONS[name] = Action(name, handler, qps, summary, request, result, read, also_counts)
        return handler

    return register


def _user(body: Mapping[str, Any], name: str) -> str | None:
    """The canonical user of ``name`` and its ``nameStr`` twin."""
    return canonical_user(body.get(name), body.get(name + "Str"), field=name)


def _required_user(body: Mapping[str, Any], name: str) -> str:
    user = _user(body, name)
    if user is None:
        raise ConvhubError(ErrorCode.INVALID_PARAM, f"{name} is required and must be positive")
    return user


def _operator(body: Mapping[str, Any]) -> str:
    """The user who makes a member change; recorded, not checked (as documented)."""
    return _required_user(body, "Operator")


@action("CreateConversation", qps=50, summary="single chat (1), group (2) or live group (100)")
async def create_conversation(
    services: Services, caller: Caller, body: CreateConversationRequest
) -> CreateConversationResult:
    core = body["ConversationCoreInfo"]
    command = commands.CreateConversation(
        app_id=body["AppId"],
        owner=_required_user(body, "OwnerUserId"),
        other=_user(body, "OtherUserId"),
        type=core["ConversationType"],
        inbox_type=body.get("InboxType") or 0,
        idempotent_id=body.get("IdempotentId"),
        name=core.get("Name"),
        avatar_url=core.get("AvatarUrl"),
        description=core.get("Description"),
        notice=core.get("Notice"),
        ext=core.get("Ext"),
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
async def modify_conversation(
    services: Services, caller: Caller, body: ModifyConversationRequest
) -> Empty:
    core = body["ConversationCoreInfo"]
    command = commands.ModifyConversation(
        app_id=body["AppId"],
        conversation_id=core["ConversationShortId"],
        name=core.get("Name"),
        avatar_url=core.get("AvatarUrl"),
        description=core.get("Description"),
        notice=core.get("Notice"),
        ext=core.get("Ext"),
        owner=_user(core, "OwnerUserId"),
    )
    await services.conversations.modify_conversation(caller, command)
    return {}


@action("BatchGetConversations", qps=100, summary="up to 100 conversations by ID")
async def batch_get_conversations(
    services: Services, caller: Caller, body: BatchGetConversationsRequest
) -> BatchGetConversationsResult:
    found = await services.conversations.batch_get_conversations(
        caller, body["AppId"], tuple(body["ConversationShortId"])
    )
    with_count = body.get("SkipMemberCount") is False  # the page's default is true
    return {"ConversationCoreInfos": codec.kept_conversation_infos(found, member_count=with_count)}


@action("DestroyConversation", qps=50, summary="dissolve a group or live group (owner only)")
async def destroy_conversation(
    services: Services, caller: Caller, body: DestroyConversationRequest
) -> Empty:
    await services.conversations.destroy_conversation(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        owner=_required_user(body, "OwnerUserId"),
    )
    return {}


_ORDERS = {order.value: order for order in UserOrder}


@action(
    "GetUserConversations",
    qps=100,
    summary="a user's conversations, 20 a page, by recent activity (0), creation (1) or own live "
    "groups (2)",
)
async def get_user_conversations(
    services: Services, caller: Caller, body: GetUserConversationsRequest
) -> GetUserConversationsResult:
    order = _ORDERS[body.get("DataType") or 0]  # the declaration allows 0, 1 and 2 only
    page = await services.conversations.user_conversations(
        caller,
        body["AppId"],
        _user(body, "ParticipantUserId"),
        order=order,
        cursor=body["Cursor"],
        limit=body["Limit"],
        inbox_type=body.get("InboxType") or 0,
    )
    with_count = body.get("SkipMemberCount") is not True  # default false here
    return {
        "ConversationInfos": codec.kept_conversation_infos(
            page.conversations, member_count=with_count
        ),
        "HasMore": page.has_more,
        "NextCursor": page.next_cursor,
    }


@action("GetConversationUserCount", qps=100, summary="how many members it has")
async def get_conversation_user_count(
    services: Services, caller: Caller, body: ConversationRequest
) -> GetConversationUserCountResult:
    count = await services.participants.count(caller, body["AppId"], body["ConversationShortId"])
    return {"Count": count}


@action("IsUserInConversation", qps=100, summary="whether a user is a current member")
async def is_user_in_conversation(
    services: Services, caller: Caller, body: IsUserInConversationRequest
) -> IsUserInConversationResult:
    member = await services.participants.is_member(
        caller, body["AppId"], body["ConversationShortId"], body["ParticipantUserId"]
    )
    return {"IsUserInConversation": member}


def _member_changes(
    infos: Sequence[NewParticipantInfo] | Sequence[ParticipantInfoChange], *, add: bool
) -> list[MemberChange]:
    # ReadIndex is declared (so read and checked) for an add only, BlockTime for a change only:
    # the other is left unread whatever the body holds.
    items: Sequence[Mapping[str, Any]] = infos
    return [
        MemberChange(
            user_id=item["ParticipantUserId"],
            nick_name=item.get("NickName"),
            level=item.get("Level"),
            role=item.get("Role"),
            ext=item.get("Ext"),
            read_index=item.get("ReadIndex") if add else None,
            block_time=None if add else item.get("BlockTime"),
        )
        for item in items
    ]


@action("BatchAddConversationParticipant", qps=50, summary="add up to 100 members")
async def batch_add_conversation_participant(
    services: Services, caller: Caller, body: BatchAddConversationParticipantRequest
) -> FailedUsers:
    failed = await services.participants.batch_add(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        operator=_operator(body),
        changes=_member_changes(body["ParticipantInfos"], add=True),
        barrier=body.get("Barrier") or False,
    )
    return {"FailedUserIds": failed}


@action("BatchDeleteConversationParticipant", qps=50, summary="remove up to 100 members")
async def batch_delete_conversation_participant(
    services: Services, caller: Caller, body: BatchDeleteConversationParticipantRequest
) -> FailedUsers:
    failed = await services.participants.batch_delete(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        operator=_operator(body),
        user_ids=body["ParticipantUserIds"],
    )
    return {"FailedUserIds": failed}


@action(
    "BatchModifyConversationParticipant",
    qps=50,
    summary="change up to 100 members' role, nick name, level, ext, mute time",
)
async def batch_modify_conversation_participant(
    services: Services, caller: Caller, body: BatchModifyConversationParticipantRequest
) -> FailedUsers:
    failed = await services.participants.batch_modify(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        operator=_operator(body),
        changes=_member_changes(body["ParticipantInfos"], add=False),
    )
    return {"FailedUserIds": failed}


@action("BatchGetConversationParticipant", qps=100, summary="up to 100 members by user ID")
async def batch_get_conversation_participant(
    services: Services, caller: Caller, body: BatchGetConversationParticipantRequest
) -> Participants:
    found = await services.participants.batch_get(
        caller, body["AppId"], body["ConversationShortId"], body["ParticipantUserIds"]
    )
    return {"Participants": [codec.participant_info(p) for p in found]}


@action(
    "ScanConversationParticipantList",
    qps=100,
    summary="page through the members in join order, either way",
)
async def scan_conversation_participant_list(
    services: Services, caller: Caller, body: ScanConversationParticipantListRequest
) -> ScanConversationParticipantListResult:
    only_ids = body.get("OnlyUserIds") or False
    page = await services.participants.scan(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        cursor=body["Cursor"],
        limit=body["Limit"],
        reverse=body.get("Reverse") or False,
        only_user_ids=only_ids,
        online=body.get("ScanOnlineParticipant") or False,
    )
    return {
        "Participants": [codec.participant_info(p, only_user_id=only_ids) for p in page.members],
        "HasMore": page.has_more,
        "NextCursor": page.next_cursor,
    }


@action(
    "ModifyConversationSetting",
    qps=50,
    summary="one member's mute, pin, favourite and ext",
)
async def modify_conversation_setting(
    services: Services, caller: Caller, body: ModifyConversationSettingRequest
) -> Empty:
    info = body["ConversationSettingInfo"]
    change = SettingChange(
        is_mute=info.get("IsMute"),
        set_stick_top=info.get("IsStickTop") or False,
        stick_top_time=info.get("StickTopTime") or 0,
        set_favorite=info.get("IsSetFavorite") or False,
        favorite_time=info.get("SetFavoriteTime") or 0,
        ext=info.get("Ext"),
    )
    await services.settings.modify_setting(
        caller, body["AppId"], info["ConversationShortId"], _user(info, "ParticipantUserId"), change
    )
    return {}


@action("GetConversationSetting", qps=100, summary="one member's settings and read index")
async def get_conversation_setting(
    services: Services, caller: Caller, body: GetConversationSettingRequest
) -> GetConversationSettingResult:
    conversation, setting = await services.settings.get_setting(
        caller, body["AppId"], body["ConversationShortId"], _user(body, "ParticipantUserId")
    )
    read_index = body.get("NoReadIndex") is not True
    return {
        "ConversationSettingInfo": codec.setting_info(conversation, setting, read_index=read_index)
    }


@action("MarkConversation", qps=50, summary="add or remove a live group's mark types")
async def mark_conversation(
    services: Services, caller: Caller, body: MarkConversationRequest
) -> Empty:
    await services.settings.mark_conversation(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        body["MarkTypes"],
        body.get("MarkAction") or ADD_MARKS,
    )
    return {}


@action("GetConversationMarks", qps=100, summary="a live group's mark types")
async def get_conversation_marks(
    services: Services, caller: Caller, body: ConversationRequest
) -> MarkTypes:
    marks = await services.settings.get_marks(caller, body["AppId"], body["ConversationShortId"])
    return {"MarkTypes": marks}


# --- messages ------------------------------------------------------------------------------------


@action(
    "SendMessage",
    qps=50,
    summary="a member's message; ClientMsgId makes it idempotent",
    also_counts=(SEND_RATE,),
)
async def send_message(
    services: Services, caller: Caller, body: SendMessageRequest
) -> SendMessageResult:
    ref = body.get("RefMsgInfo")
    command = commands.SendMessage(
        app_id=body["AppId"],
        conversation_id=body["ConversationShortId"],
        sender=_user(body, "Sender"),
        msg_type=body["MsgType"],
        content=body["Content"],
        client_msg_id=body.get("ClientMsgId"),
        create_time=body.get("CreateTime"),
        ext=body.get("Ext"),
        mentioned_users=codec.users(body, "MentionedUsers"),
        visible_users=codec.users(body, "VisibleUsers"),
        invisible_users=codec.users(body, "InvisibleUsers"),
        priority=body.get("Priority"),
        ref_message_id=None if ref is None else ref["ReferencedMessageId"],
        ref_hint=None if ref is None else ref.get("Hint"),
    )
    sent = await services.messages.send_message(caller, command)
    return {"MessageId": sent.id}


@action(
    "GetConversationMessages",
    qps=100,
    summary="page through a conversation's messages by index, either way, 20 a page",
)
async def get_conversation_messages(
    services: Services, caller: Caller, body: GetConversationMessagesRequest
) -> GetConversationMessagesResult:
    page = await services.messages.conversation_messages(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        cursor=body["Cursor"],
        limit=body["Limit"],
        reverse=body.get("Reverse") == 1,  # anything else is 0
    )
    conversation = page.conversation
    return {
        "Messages": [codec.message_body(conversation, q) for q in page.messages]
        if conversation is not None
        else [],
        "HasMore": page.has_more,
        "NewCursor": page.new_cursor,
    }


@action("GetMessages", qps=100, summary="up to 100 messages by ID")
async def get_messages(services: Services, caller: Caller, body: GetMessagesRequest) -> Messages:
    conversation, found = await services.messages.get_messages(
        caller, body["AppId"], body["ConversationShortId"], body["MessageIds"]
    )
    return {"Messages": [codec.message_body(conversation, q) for q in found]}


@action("RecallMessage", qps=50, summary="recall a message (own, or any as owner or admin)")
async def recall_message(services: Services, caller: Caller, body: RecallMessageRequest) -> Empty:
    await services.messages.recall_message(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        body["MessageId"],
        user=str(body["ParticipantUserId"]),
        role=body.get("RecallRole") or 0,
    )
    return {}


@action(
    "DeleteConversationMessage",
    qps=50,
    summary="delete a message for everyone (0) or all but its sender (1)",
)
async def delete_conversation_message(
    services: Services, caller: Caller, body: DeleteConversationMessageRequest
) -> Empty:
    await services.messages.delete_conversation_message(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        body["MessageId"],
        body.get("DeleteType") or 0,
    )
    return {}


@action("DeleteMessage", qps=50, summary="delete a message for one member")
async def delete_message(services: Services, caller: Caller, body: DeleteMessageRequest) -> Empty:
    await services.messages.delete_message_for(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        body["MessageId"],
        str(body["ParticipantUserId"]),
    )
    return {}


@action("ModifyMessage", qps=50, summary="merge a message's Ext, replace its Content")
async def modify_message(services: Services, caller: Caller, body: ModifyMessageRequest) -> Empty:
    await services.messages.modify_volc_message(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        body["MessageId"],
        ext=body.get("Ext"),
        content=body.get("Content"),
    )
    return {}


@action(
    "ModifyParticipantReadIndex",
    qps=50,
    summary="move a member's read index forward (QPS undocumented: convhub's, as writes)",
)
async def modify_participant_read_index(
    services: Services, caller: Caller, body: ModifyParticipantReadIndexRequest
) -> Empty:
    await services.messages.set_read_index(
        caller,
        body["AppId"],
        body["ConversationShortId"],
        _user(body, "ParticipantUserId"),
        body["ReadIndex"],
    )
    return {}


@action(
    "GetParticipantReadIndex",
    qps=100,
    summary="the members' read indexes (QPS undocumented: convhub's, as reads)",
)
async def get_participant_read_index(
    services: Services, caller: Caller, body: ConversationRequest
) -> GetParticipantReadIndexResult:
    found = await services.messages.read_indexes(caller, body["AppId"], body["ConversationShortId"])
    return {
        "ReadIndexes": [
            {"ParticipantUserId": user_number(user), "ParticipantUserIdStr": user,
             "ReadIndex": index}
            for user, index in found
        ]
    }  # fmt: skip


def markdown_table() -> str:
    """The README's action table, from the declarations."""
    rows = ["| Action | QPS per account | what it does |", "|---|---|---|"]
    rows += [f"| `{a.name}` | {a.qps} | {a.summary} |" for a in ACTIONS.values()]
    return "\n".join(rows)


__all__ = ["ACTIONS", "VERSION", "Action", "markdown_table"]
