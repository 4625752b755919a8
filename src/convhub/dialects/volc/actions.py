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
from convhub.domain.limits import SEND_RATE
from convhub.domain.participants import MemberChange
from convhub.domain.ports import UserOrder
from convhub.domain.services import Services
from convhub.domain.settings import ADD_MARKS, SettingChange
from convhub.domain.users import user_number
from convhub.errors import ConvhubError, ErrorCode

VERSION = "2020-12-01"

Handler = Callable[[Services, Caller, Body], Awaitable[Body]]


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    handler: Handler
    qps: int  # per account, the QPS its Volcengine page documents
    summary: str
    also_counts: tuple[str, ...] = ()  # account-wide limits it counts toward (SEND_RATE)


ACTIONS: dict[str, Action] = {}


def action(
    name: str, *, qps: int, summary: str, also_counts: tuple[str, ...] = ()
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        if name in ACTIONS:
            raise ValueError(f"action {name} is declared twice")
        ACTIONS[name] = Action(name, handler, qps, summary, also_counts)
        return handler

    return register


def _app_id(body: Body) -> int:
    value = codec.integer(body, "AppId", width=INT32, required=True)
    assert value is not None
    return value


def _required_int(body: Body, name: str) -> int:
    value = codec.integer(body, name, required=True)
    assert value is not None
    return value


def _required_int_32(body: Body, name: str) -> int:
    value = codec.integer(body, name, width=INT32, required=True)
    assert value is not None
    return value


def _required_string(body: Body, name: str) -> str:
    value = codec.string(body, name, required=True)
    assert value is not None
    return value


def _positive(body: Body, name: str) -> int:
    value = _required_int(body, name)
    if value <= 0:
        raise ConvhubError(ErrorCode.INVALID_PARAM, f"{name} must be a positive user ID")
    return value


def _required_user(body: Body, name: str) -> str:
    user = codec.user(body, name)
    if user is None:
        raise ConvhubError(ErrorCode.INVALID_PARAM, f"{name} is required and must be positive")
    return user


def _operator(body: Body) -> str:
    """The user who makes a member change; recorded, not checked (as documented)."""
    return _required_user(body, "Operator")


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
            codec.kept_conversation_info(c, member_count=with_count) for c in found
        ]
    }


@action("DestroyConversation", qps=50, summary="dissolve a group or live group (owner only)")
async def destroy_conversation(services: Services, caller: Caller, body: Body) -> Body:
    app_id = _app_id(body)
    conversation_id = _conversation_id(body)
    owner = _required_user(body, "OwnerUserId")
    await services.conversations.destroy_conversation(caller, app_id, conversation_id, owner=owner)
    return {}


_ORDERS = {order.value: order for order in UserOrder}


@action(
    "GetUserConversations",
    qps=100,
    summary="a user's conversations, 20 a page, by recent activity (0), creation (1) or own live "
    "groups (2)",
)
async def get_user_conversations(services: Services, caller: Caller, body: Body) -> Body:
    app_id = _app_id(body)
    data_type = codec.integer(body, "DataType", width=INT32) or 0
    order = _ORDERS.get(data_type)
    if order is None:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "DataType must be 0, 1 or 2")
    page = await services.conversations.user_conversations(
        caller,
        app_id,
        codec.user(body, "ParticipantUserId"),
        order=order,
        cursor=_required_int(body, "Cursor"),
        limit=_required_int(body, "Limit"),
        inbox_type=codec.integer(body, "InboxType", width=INT32) or 0,
    )
    with_count = codec.boolean(body, "SkipMemberCount") is not True  # default false here
    return {
        "ConversationInfos": [
            codec.kept_conversation_info(c, member_count=with_count) for c in page.conversations
        ],
        "HasMore": page.has_more,
        "NextCursor": page.next_cursor,
    }


@action("GetConversationUserCount", qps=100, summary="how many members it has")
async def get_conversation_user_count(services: Services, caller: Caller, body: Body) -> Body:
    count = await services.participants.count(caller, _app_id(body), _conversation_id(body))
    return {"Count": count}


@action("IsUserInConversation", qps=100, summary="whether a user is a current member")
async def is_user_in_conversation(services: Services, caller: Caller, body: Body) -> Body:
    app_id, conversation_id = _app_id(body), _conversation_id(body)
    user_id = _required_int(body, "ParticipantUserId")
    member = await services.participants.is_member(caller, app_id, conversation_id, user_id)
    return {"IsUserInConversation": member}


def _changes(body: Body, *, add: bool) -> list[MemberChange]:
    changes = []
    for item in codec.object_list(body, "ParticipantInfos", required=True):
        changes.append(
            MemberChange(
                user_id=_required_int(item, "ParticipantUserId"),
                nick_name=codec.string(item, "NickName"),
                level=codec.integer(item, "Level", width=INT32),
                role=codec.integer(item, "Role"),
                ext=codec.string_map(item, "Ext"),
                read_index=codec.integer(item, "ReadIndex") if add else None,
                block_time=None if add else codec.integer(item, "BlockTime"),
            )
        )
    return changes


@action("BatchAddConversationParticipant", qps=50, summary="add up to 100 members")
async def batch_add_conversation_participant(
    services: Services, caller: Caller, body: Body
) -> Body:
    failed = await services.participants.batch_add(
        caller,
        _app_id(body),
        _conversation_id(body),
        operator=_operator(body),
        changes=_changes(body, add=True),
        barrier=codec.boolean(body, "Barrier") or False,
    )
    return {"FailedUserIds": failed}


@action("BatchDeleteConversationParticipant", qps=50, summary="remove up to 100 members")
async def batch_delete_conversation_participant(
    services: Services, caller: Caller, body: Body
) -> Body:
    failed = await services.participants.batch_delete(
        caller,
        _app_id(body),
        _conversation_id(body),
        operator=_operator(body),
        user_ids=codec.integer_list(body, "ParticipantUserIds", required=True),
    )
    return {"FailedUserIds": failed}


@action(
    "BatchModifyConversationParticipant",
    qps=50,
    summary="change up to 100 members' role, nick name, level, ext, mute time",
)
async def batch_modify_conversation_participant(
    services: Services, caller: Caller, body: Body
) -> Body:
    failed = await services.participants.batch_modify(
        caller,
        _app_id(body),
        _conversation_id(body),
        operator=_operator(body),
        changes=_changes(body, add=False),
    )
    return {"FailedUserIds": failed}


@action("BatchGetConversationParticipant", qps=100, summary="up to 100 members by user ID")
async def batch_get_conversation_participant(
    services: Services, caller: Caller, body: Body
) -> Body:
    found = await services.participants.batch_get(
        caller,
        _app_id(body),
        _conversation_id(body),
        codec.integer_list(body, "ParticipantUserIds", required=True),
    )
    return {"Participants": [codec.participant_info(p) for p in found]}


@action(
    "ScanConversationParticipantList",
    qps=100,
    summary="page through the members in join order, either way",
)
async def scan_conversation_participant_list(
    services: Services, caller: Caller, body: Body
) -> Body:
    only_ids = codec.boolean(body, "OnlyUserIds") or False
    page = await services.participants.scan(
        caller,
        _app_id(body),
        _conversation_id(body),
        cursor=_required_int(body, "Cursor"),
        limit=_required_int(body, "Limit"),
        reverse=codec.boolean(body, "Reverse") or False,
        only_user_ids=only_ids,
        online=codec.boolean(body, "ScanOnlineParticipant") or False,
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
async def modify_conversation_setting(services: Services, caller: Caller, body: Body) -> Body:
    app_id = _app_id(body)
    info = codec.obj(body, "ConversationSettingInfo", required=True)
    assert info is not None
    change = SettingChange(
        is_mute=codec.boolean(info, "IsMute"),
        set_stick_top=codec.boolean(info, "IsStickTop") or False,
        stick_top_time=codec.integer(info, "StickTopTime") or 0,
        set_favorite=codec.boolean(info, "IsSetFavorite") or False,
        favorite_time=codec.integer(info, "SetFavoriteTime") or 0,
        ext=codec.string_map(info, "Ext"),
    )
    await services.settings.modify_setting(
        caller, app_id, _conversation_id(info), codec.user(info, "ParticipantUserId"), change
    )
    return {}


@action("GetConversationSetting", qps=100, summary="one member's settings and read index")
async def get_conversation_setting(services: Services, caller: Caller, body: Body) -> Body:
    conversation, setting = await services.settings.get_setting(
        caller, _app_id(body), _conversation_id(body), codec.user(body, "ParticipantUserId")
    )
    read_index = codec.boolean(body, "NoReadIndex") is not True
    return {
        "ConversationSettingInfo": codec.setting_info(conversation, setting, read_index=read_index)
    }


@action("MarkConversation", qps=50, summary="add or remove a live group's mark types")
async def mark_conversation(services: Services, caller: Caller, body: Body) -> Body:
    await services.settings.mark_conversation(
        caller,
        _app_id(body),
        _conversation_id(body),
        codec.string_list(body, "MarkTypes", required=True),
        codec.integer(body, "MarkAction", width=INT32) or ADD_MARKS,
    )
    return {}


@action("GetConversationMarks", qps=100, summary="a live group's mark types")
async def get_conversation_marks(services: Services, caller: Caller, body: Body) -> Body:
    marks = await services.settings.get_marks(caller, _app_id(body), _conversation_id(body))
    return {"MarkTypes": marks}


# --- messages ------------------------------------------------------------------------------------


def _message_id(body: Body) -> int:
    value = _required_int(body, "MessageId")
    if value <= 0:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "MessageId must be positive")
    return value


@action(
    "SendMessage",
    qps=50,
    summary="a member's message; ClientMsgId makes it idempotent",
    also_counts=(SEND_RATE,),
)
async def send_message(services: Services, caller: Caller, body: Body) -> Body:
    ref = codec.obj(body, "RefMsgInfo")
    command = commands.SendMessage(
        app_id=_app_id(body),
        conversation_id=_conversation_id(body),
        sender=codec.user(body, "Sender"),
        msg_type=_required_int_32(body, "MsgType"),
        content=_required_string(body, "Content"),
        client_msg_id=codec.string(body, "ClientMsgId"),
        create_time=codec.integer(body, "CreateTime"),
        ext=codec.string_map(body, "Ext"),
        mentioned_users=codec.users(body, "MentionedUsers"),
        visible_users=codec.users(body, "VisibleUsers"),
        invisible_users=codec.users(body, "InvisibleUsers"),
        priority=codec.integer(body, "Priority", width=INT32),
        ref_message_id=None if ref is None else _required_int(ref, "ReferencedMessageId"),
        ref_hint=None if ref is None else codec.string(ref, "Hint"),
    )
    sent = await services.messages.send_message(caller, command)
    return {"MessageId": sent.id}


@action(
    "GetConversationMessages",
    qps=100,
    summary="page through a conversation's messages by index, either way, 20 a page",
)
async def get_conversation_messages(services: Services, caller: Caller, body: Body) -> Body:
    page = await services.messages.conversation_messages(
        caller,
        _app_id(body),
        _conversation_id(body),
        cursor=_required_int(body, "Cursor"),
        limit=_required_int(body, "Limit"),
        reverse=codec.integer(body, "Reverse", width=INT32) == 1,  # anything else is 0
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
async def get_messages(services: Services, caller: Caller, body: Body) -> Body:
    conversation, found = await services.messages.get_messages(
        caller,
        _app_id(body),
        _conversation_id(body),
        codec.integer_list(body, "MessageIds", required=True),
    )
    return {"Messages": [codec.message_body(conversation, q) for q in found]}


@action("RecallMessage", qps=50, summary="recall a message (own, or any as owner or admin)")
async def recall_message(services: Services, caller: Caller, body: Body) -> Body:
    await services.messages.recall_message(
        caller,
        _app_id(body),
        _conversation_id(body),
        _message_id(body),
        user=str(_positive(body, "ParticipantUserId")),
        role=codec.integer(body, "RecallRole", width=INT32) or 0,
    )
    return {}


@action(
    "DeleteConversationMessage",
    qps=50,
    summary="delete a message for everyone (0) or all but its sender (1)",
)
async def delete_conversation_message(services: Services, caller: Caller, body: Body) -> Body:
    await services.messages.delete_conversation_message(
        caller,
        _app_id(body),
        _conversation_id(body),
        _message_id(body),
        codec.integer(body, "DeleteType", width=INT32) or 0,
    )
    return {}


@action("DeleteMessage", qps=50, summary="delete a message for one member")
async def delete_message(services: Services, caller: Caller, body: Body) -> Body:
    await services.messages.delete_message_for(
        caller,
        _app_id(body),
        _conversation_id(body),
        _message_id(body),
        str(_positive(body, "ParticipantUserId")),
    )
    return {}


@action("ModifyMessage", qps=50, summary="merge a message's Ext, replace its Content")
async def modify_message(services: Services, caller: Caller, body: Body) -> Body:
    await services.messages.modify_volc_message(
        caller,
        _app_id(body),
        _conversation_id(body),
        _message_id(body),
        ext=codec.string_map(body, "Ext"),
        content=codec.string(body, "Content"),
    )
    return {}


@action(
    "ModifyParticipantReadIndex",
    qps=50,
    summary="move a member's read index forward (QPS undocumented: convhub's, as writes)",
)
async def modify_participant_read_index(services: Services, caller: Caller, body: Body) -> Body:
    await services.messages.set_read_index(
        caller,
        _app_id(body),
        _conversation_id(body),
        codec.user(body, "ParticipantUserId"),
        _required_int(body, "ReadIndex"),
    )
    return {}


@action(
    "GetParticipantReadIndex",
    qps=100,
    summary="the members' read indexes (QPS undocumented: convhub's, as reads)",
)
async def get_participant_read_index(services: Services, caller: Caller, body: Body) -> Body:
    found = await services.messages.read_indexes(caller, _app_id(body), _conversation_id(body))
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
