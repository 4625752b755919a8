"""Volcengine core -> wire: the results, shaped as ``convhub.wire.volc`` declares them.

Requests are read by the readers compiled from the same declarations (``fields.reader``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from convhub.dialects.asgi import kept_fragment
from convhub.dialects.fields import Body as Body
from convhub.domain.messages import Quoted
from convhub.domain.models import Conversation, ConversationSetting, Participant
from convhub.domain.users import canonical_user, user_number
from convhub.wire import volc


def conversation_info(conversation: Conversation, *, member_count: bool) -> volc.ConversationInfo:
    c = conversation
    info: volc.ConversationInfo = {
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


def kept_conversation_infos(
    conversations: Iterable[Conversation], *, member_count: bool
) -> list[volc.ConversationInfo]:
    """``conversation_info`` of each conversation read for a read-only answer (never to be
    changed afterwards), already serialized: an ``orjson.Fragment``, which orjson writes into the
    answer as it is, byte for byte what the dict would have been. Serializing 100 of them made 55
    of the 60 µs that a BatchGetConversations answer took to encode. Each is encoded once and
    held on the object (``Conversation.encoded``, and ``encoded_counted`` with MemberCount), so
    that a kept conversation asked for again costs one attribute read: a cache beside it, keyed
    by identity, cost three lookups in tables too large for the CPU's caches once a table's
    conversations are asked for at random. Typed as the dict it stands for: nothing but the
    answer's serializer reads it."""
    found: list[volc.ConversationInfo] = []
    append = found.append
    if member_count:
        for conversation in conversations:
            fragment = conversation.encoded_counted
            if fragment is None:
                fragment = conversation.encoded_counted = _fragment(conversation, True)
            append(fragment)
    else:
        for conversation in conversations:
            fragment = conversation.encoded
            if fragment is None:
                fragment = conversation.encoded = _fragment(conversation, False)
            append(fragment)
    return found


def _fragment(conversation: Conversation, member_count: bool) -> Any:
    return kept_fragment(conversation_info(conversation, member_count=member_count))


def participant_info(p: Participant, *, only_user_id: bool = False) -> volc.Participant:
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


def setting_info(
    c: Conversation, s: ConversationSetting, *, read_index: bool
) -> volc.ConversationSettingInfo:
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


def users(body: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """An array of user IDs and its ``Str`` twin (both read already), merged in order, each user
    once; ``null`` elements are skipped."""
    found: list[str] = []
    for item in body.get(name) or ():
        user = None if item is None else canonical_user(item, None, field=name)
        if user is not None:
            found.append(user)
    for item in body.get(name + "Str") or ():
        user = None if item is None else canonical_user(None, item, field=name)
        if user is not None:
            found.append(user)
    return tuple(dict.fromkeys(found))


def message_body(c: Conversation, q: Quoted) -> volc.MessageBody:
    """§6.5: a message as the server's view shows it."""
    m = q.message
    body: volc.MessageBody = {
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
