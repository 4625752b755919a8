"""Volcengine wire <-> core: strict decoding of request fields, encoding of results.

JSON types are checked exactly: an ID must be a JSON integer (not a float, string or boolean)
within its declared width. ``null`` counts as absent, because the Go SDK sends null for unset
arrays and maps.
"""

from __future__ import annotations

# Re-exported: each dialect's codec is the one place its handlers read fields from.
from convhub.dialects.fields import Body as Body
from convhub.dialects.fields import bad as bad
from convhub.dialects.fields import obj as obj
from convhub.dialects.fields import string as string
from convhub.dialects.fields import string_map as string_map
from convhub.domain.models import Conversation
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
