"""Who sees a message: the one rule for every read path that has a reader.

Volcengine's message reads have no reader (they are the server's view: every message visible to
all). A Coze token reads as its user, who sees a message unless it was recalled or deleted for
everyone, deleted by that user alone (DeleteMessage), deleted "visible only to the sender" by
someone else's message, kept from it by VisibleUsers/InvisibleUsers, or sent before the user
joined with Barrier. A sender always sees its own messages, unless recalled or deleted for all.
"""

from __future__ import annotations

from convhub.domain.models import Message, MessageStatus

VISIBLE_TO_ALL = MessageStatus.NORMAL
# The RefMsgInfo.Status of a quote (§6.5): 0 visible, 1 expired, 3 recalled, 4 deleted.
_REF_STATUS = {
    MessageStatus.NORMAL: 0,
    MessageStatus.RECALLED: 3,
    MessageStatus.DELETED: 4,
    MessageStatus.SENDER_ONLY: 4,
}
REF_GONE = 1


def seen_by(message: Message, reader: str, *, hidden: set[int], history_floor: int) -> bool:
    if message.status is MessageStatus.SENDER_ONLY:
        if message.sender != reader:
            return False
    elif message.status is not MessageStatus.NORMAL:
        return False
    if message.id in hidden:
        return False
    if message.sender == reader:
        return True
    if message.index <= history_floor:
        return False
    if message.visible_users and reader not in message.visible_users:
        return False
    return reader not in message.invisible_users


def ref_status(quoted: Message | None) -> int:
    return REF_GONE if quoted is None else _REF_STATUS[quoted.status]
