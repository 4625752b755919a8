"""Volcengine wire <-> core: strict decoding of request fields, encoding of results.

JSON types are checked exactly: an ID must be a JSON integer (not a float, string or boolean)
within its declared width. ``null`` counts as absent, because the Go SDK sends null for unset
arrays and maps.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

# Re-exported: each dialect's codec is the one place its handlers read fields from.
from convhub.dialects.fields import Body as Body
from convhub.dialects.fields import bad as bad
from convhub.dialects.fields import obj as obj
from convhub.dialects.fields import string as string
from convhub.dialects.fields import string_map as string_map
from convhub.domain.messages import Quoted
from convhub.domain.models import Conversation, ConversationSetting, Participant
from convhub.domain.users import canonical_user, user_number
from convhub.errors import ConvhubError, ErrorCode

INT32 = (-(1 << 31), (1 << 31) - 1)
INT64 = (-(1 << 63), (1 << 63) - 1)


def integer(
    body: Body, name: str, *, width: tuple[int, int] = INT64, required: bool = False
) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad(f"{name} is required")
        return None
    if type(value) is not int:
        raise bad(f"{name} must be an integer")
    if not width[0] <= value <= width[1]:
        bits = 32 if width == INT32 else 64
        raise bad(f"{name} is out of range for a {bits}-bit integer")
    return value


def boolean(body: Body, name: str) -> bool | None:
    value = body.get(name)
    if value is None or type(value) is bool:
        return value
    raise bad(f"{name} must be a boolean")


def integer_list(body: Body, name: str, *, required: bool = False) -> list[int]:
    value = body.get(name)
    if value is None:
        if required:
            raise bad(f"{name} is required")
        return []
    if type(value) is not list:
        raise bad(f"{name} must be an array of integers")
    for item in value:
        if type(item) is not int:
            raise ConvhubError(
                ErrorCode.INVALID_CONVERSATION_ID_ELEMENT
                if name == "ConversationShortId"
                else ErrorCode.INVALID_PARAM,
                f"{name} must hold only integers",
            )
        if not INT64[0] <= item <= INT64[1]:
            raise bad(f"{name} holds a value out of range for a 64-bit integer")
    return value


def user(body: Body, name: str) -> str | None:
    """The canonical user for ``name`` and its ``nameStr`` twin."""
    return canonical_user(integer(body, name), string(body, name + "Str"), field=name)


def conversation_info(conversation: Conversation, *, member_count: bool) -> Body:
    c = conversation
    info: Body = {
        "ConversationShortId": c.id,
        "ConversationId": str(c.id),
        "AppId": c.app_id,
        "InboxType": c.inbox_type,
        "ConversationType": int(c.type),
        "Name": c.name,
        "AvatarUrl": c.avatar_url,
        "Description": c.description,
        "Notice": c.notice,
        "Ext": c.ext,
        "OwnerUserId": user_number(c.owner),
        "OwnerUserIdStr": c.owner,
        "CreatorUserId": user_number(c.creator),
        "CreatorUserIdStr": c.creator,
        "Status": int(c.status),
        "CreateTime": c.create_time,
        "ModifyTime": c.modify_time,
        "OnlineCount": c.online_count,
    }
    if member_count:
        info["MemberCount"] = c.member_count
    if c.other is not None:
        info["OtherUserId"] = user_number(c.other)
        info["OtherUserIdStr"] = c.other
    return info


# The wire form of conversations read through the store's kept rows (store/kept.py): those
# objects are shared and never changed, so each is encoded once while it stays kept. Keyed by
# identity; an entry holds its object, so no other object can take its id while it lives.
# An OrderedDict, not a dict: dropping a dict's first entry again and again leaves holes that
# the next ``next(iter(...))`` walks over, which made each eviction slower than the last.
_ENCODED: OrderedDict[tuple[int, bool], tuple[Conversation, Body]] = OrderedDict()
_ENCODED_MAX = 32_768


def kept_conversation_info(conversation: Conversation, *, member_count: bool) -> Body:
    """``conversation_info`` of a conversation read for a read-only answer (never to be changed
    afterwards); the answer is shared, so callers must not change it either."""
    key = (id(conversation), member_count)
    entry = _ENCODED.get(key)
    if entry is not None and entry[0] is conversation:
        return entry[1]
    info = conversation_info(conversation, member_count=member_count)
    if len(_ENCODED) >= _ENCODED_MAX:
        _ENCODED.popitem(last=False)
    _ENCODED[key] = (conversation, info)
    return info


def _typed_list(body: Body, name: str, kind: type, what: str, required: bool) -> list[Any]:
    value = body.get(name)
    if value is None:
        if required:
            raise bad(f"{name} is required")
        return []
    if type(value) is not list or not all(type(item) is kind for item in value):
        raise bad(f"{name} must be an array of {what}")
    return value


def object_list(body: Body, name: str, *, required: bool = False) -> list[Body]:
    return _typed_list(body, name, dict, "objects", required)


def string_list(body: Body, name: str, *, required: bool = False) -> list[str]:
    return _typed_list(body, name, str, "strings", required)


def participant_info(p: Participant, *, only_user_id: bool = False) -> Body:
    """§6.4; with ``only_user_id`` (Scan's OnlyUserIds) the other required fields are zero."""
    if only_user_id:
        return {
            "ConversationShortId": p.conversation_id,
            "ParticipantUserId": user_number(p.user),
            "ParticipantUserIdStr": p.user,
            "Role": 0,
            "Operator": 0,
            "AvatarUrl": "",
        }
    return {
        "ConversationShortId": p.conversation_id,
        "ParticipantUserId": user_number(p.user),
        "ParticipantUserIdStr": p.user,
        "Role": int(p.role),
        "Operator": user_number(p.operator),
        "OperatorStr": p.operator,
        "NickName": p.nick_name,
        "AvatarUrl": "",
        "Level": p.level,
        "Ext": p.ext,
        "Status": int(p.status),
        "CreateTime": p.create_time,
        "BlockTime": p.block_time,
    }


def setting_info(c: Conversation, s: ConversationSetting, *, read_index: bool) -> Body:
    """§6.6, response form: ``IsStickTop`` and ``IsSetFavorite`` are states here."""
    return {
        "AppId": c.app_id,
        "ConversationShortId": c.id,
        "ConversationId": str(c.id),
        "ConversationType": int(c.type),
        "InboxType": c.inbox_type,
        "ParticipantUserId": user_number(s.user),
        "ParticipantUserIdStr": s.user,
        "ReadIndex": s.read_index if read_index else 0,
        "StickTopTime": s.stick_top_time,
        "IsStickTop": s.stick_top_time > 0,
        "SetFavoriteTime": s.favorite_time,
        "IsSetFavorite": s.favorite_time > 0,
        "IsMute": s.is_mute,
        "Ext": s.ext,
    }


def users(body: Body, name: str) -> tuple[str, ...]:
    """An array of int64 user IDs and its ``Str`` twin, merged; null elements are skipped."""
    found: list[str] = []
    for item in _list(body, name):
        if type(item) is not int or not INT64[0] <= item <= INT64[1]:
            raise bad(f"{name} must hold 64-bit integers")
        user = canonical_user(item, None, field=name)
        if user is not None:
            found.append(user)
    for item in _list(body, name + "Str"):
        if type(item) is not str:
            raise bad(f"{name}Str must hold strings")
        user = canonical_user(None, item, field=name)
        if user is not None:
            found.append(user)
    return tuple(dict.fromkeys(found))


def _list(body: Body, name: str) -> list[object]:
    value = body.get(name)
    if value is None:
        return []
    if type(value) is not list:
        raise bad(f"{name} must be an array")
    return [item for item in value if item is not None]


def message_body(c: Conversation, q: Quoted) -> Body:
    """§6.5: a message as the server's view shows it."""
    m = q.message
    body: Body = {
        "AppId": c.app_id,
        "ConversationShortId": m.conversation_id,
        "ConversationType": int(c.type),
        "MessageId": m.id,
        "MsgType": m.msg_type,
        "Content": m.content,
        "Sender": user_number(m.sender),
        "SenderStr": m.sender,
        "CreateTime": m.create_time,
        "Status": 0,
        "Ext": m.ext,
        "IndexInConversation": m.index,
    }
    if m.ref_message_id:
        body["RefMsgInfo"] = {
            "ReferencedMessageId": m.ref_message_id,
            "Hint": m.ref_hint,
            "ReferencedMessageType": q.ref_type,
            "Status": q.ref_status,
        }
    if m.client_msg_id:
        body["ClientMsgId"] = m.client_msg_id
    return body
