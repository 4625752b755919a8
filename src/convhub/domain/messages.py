"""Messages of a conversation, one store for both dialects: send (Volcengine) or create (Coze),
page through, read, recall, modify, delete for all or for one member, read indexes, feedback.

Each message takes the next ``IndexInConversation`` of its conversation (1, 2, 3 … with no gaps):
the conversation's counter moves in the same transaction as the insert, under the row's lock.

Coze paging follows the order asked for: ``after_id`` continues past that message in that order
(older ones when newest-first, newer ones when oldest-first) and ``before_id`` gives the page just
before it. A page knows whether more lie beyond it in its direction, so that following ``last_id``
(or ``first_id`` backwards) walks every message exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import orjson

from convhub.domain import rules
from convhub.domain.caller import Caller
from convhub.domain.commands import NewMessage, SendMessage
from convhub.domain.members import current_member
from convhub.domain.models import (
    Conversation,
    ConversationSetting,
    ConversationType,
    Feedback,
    Message,
    MessageStatus,
    MsgType,
)
from convhub.domain.policy import Policy
from convhub.domain.ports import Database, IdSource, UnitOfWork
from convhub.domain.visibility import ref_status, seen_by
from convhub.errors import ConvhubError, ErrorCode

MAX_MESSAGE_PAGE = 20  # GetConversationMessages' documented cap
MAX_GET_MESSAGES = 100
MAX_CLIENT_MSG_ID = 128
MAX_REF_HINT = 1024
_INT64_MAX = (1 << 63) - 1
_VOLC_READABLE = (int(MessageStatus.NORMAL), int(MessageStatus.SENDER_ONLY))

ROLES = frozenset({"user", "assistant"})
INPUT_CONTENT_TYPES = frozenset({"text", "object_string"})
FEEDBACK_TYPES = frozenset({"like", "unlike"})
_DEFAULT_TYPE = {"user": "question", "assistant": "answer"}
_MESSAGE_TYPES = frozenset(
    {"question", "answer", "function_call", "tool_output", "tool_response", "follow_up", "verbose"}
)
# A Coze content type is a Volcengine MsgType: plain text is text, a serialised list of objects
# (Coze's multimodal form) is a custom message.
MSG_TYPES = {"text": MsgType.TEXT, "object_string": MsgType.CUSTOM}


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]
    first_id: str
    last_id: str
    has_more: bool


@dataclass(frozen=True, slots=True)
class Quoted:
    """A message with what its RefMsgInfo needs to say of the message it quotes."""

    message: Message
    ref_type: int = 0
    ref_status: int = 0


@dataclass(frozen=True, slots=True)
class IndexPage:
    conversation: Conversation | None  # None: an empty page
    messages: list[Quoted]
    has_more: bool
    new_cursor: int


def _content_type(msg_type: int) -> str:
    """The Coze content type of a message: text, or Coze's serialised form for anything else."""
    return "text" if msg_type == MsgType.TEXT else "object_string"


def _quoted(uow: UnitOfWork, conversation_id: int, found: list[Message]) -> list[Quoted]:
    refs = {m.ref_message_id for m in found if m.ref_message_id}
    quoted = {q.id: q for q in uow.messages.get_many(conversation_id, list(refs))} if refs else {}
    out = []
    for m in found:
        if m.ref_message_id:
            q = quoted.get(m.ref_message_id)
            out.append(Quoted(m, q.msg_type if q else 0, ref_status(q)))
        else:
            out.append(Quoted(m))
    return out


def _check_content(content: str, content_type: str) -> None:
    if content_type not in INPUT_CONTENT_TYPES:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "content_type must be text or object_string")
    rules.check_length(content, rules.MAX_MESSAGE_CONTENT, "content")
    if content_type == "object_string":
        try:
            parsed = orjson.loads(content)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, list):
            raise ConvhubError(
                ErrorCode.INVALID_PARAM,
                "an object_string content must be a JSON array of objects, serialised",
            )


def validate_new_message(message: NewMessage) -> None:
    if message.role not in ROLES:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "role must be user or assistant")
    if message.type is not None and message.type not in _MESSAGE_TYPES:
        raise ConvhubError(ErrorCode.INVALID_PARAM, f"unknown message type {message.type!r}")
    _check_content(message.content, message.content_type)
    rules.check_meta_data(message.meta_data)


def build_message(
    message_id: int,
    index: int,
    conversation: Conversation,
    sender: str,
    new: NewMessage,
    now_ms: int,
) -> Message:
    """A Coze-style message, as the core keeps it."""
    return Message(
        id=message_id,
        conversation_id=conversation.id,
        index=index,
        sender=sender,
        msg_type=int(MSG_TYPES[new.content_type]),
        content=new.content,
        ext=dict(new.meta_data or {}),
        status=MessageStatus.NORMAL,
        create_time=now_ms,
        update_time=now_ms,
        section_id=conversation.section_id,
        role=new.role,
        type=new.type or _DEFAULT_TYPE[new.role],
        content_type=new.content_type,
        bot_id=conversation.bot_id if new.role == "assistant" else "",
    )


def _missing(message_id: int) -> ConvhubError:
    return ConvhubError(ErrorCode.MESSAGE_NOT_FOUND, f"message {message_id} does not exist")


def _get_visible(uow: UnitOfWork, conversation_id: int, message_id: int) -> Message:
    """A message visible to all (what may be changed through either dialect)."""
    message = uow.messages.get(conversation_id, message_id)
    if message is None or message.status is not MessageStatus.NORMAL:
        raise _missing(message_id)
    return message


def _seen(uow: UnitOfWork, conversation_id: int, message_id: int, reader: str) -> Message:
    """A message that ``reader`` sees (``visibility.seen_by``)."""
    message = uow.messages.get(conversation_id, message_id)
    if message is None:
        raise _missing(message_id)
    member = uow.participants.get(conversation_id, reader)
    floor = member.history_floor if member is not None else 0
    hidden = uow.messages.hidden_for(reader, [message_id])
    if not seen_by(message, reader, hidden=hidden, history_floor=floor):
        raise _missing(message_id)
    return message


def _check_users(users: tuple[str, ...], field: str) -> None:
    if len(users) > 1000:
        raise ConvhubError(ErrorCode.INVALID_PARAM, f"{field} may name at most 1000 users")


class MessageService:
    def __init__(
        self, *, db: Database, ids: IdSource, clock: Callable[[], float], policy: Policy
    ) -> None:
        self._db = db
        self._ids = ids
        self._clock = clock
        self._policy = policy

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- Volcengine --------------------------------------------------------------------------

    async def send_message(self, caller: Caller, command: SendMessage) -> Message:
        """A new message, or, for a ClientMsgId already used in the conversation, that one."""
        if command.sender is None:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "Sender is required")
        if command.msg_type <= 0:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "MsgType must be positive")
        rules.check_length(command.content, rules.MAX_MESSAGE_CONTENT, "Content")
        rules.check_length(command.client_msg_id, MAX_CLIENT_MSG_ID, "ClientMsgId")
        rules.check_length(command.ref_hint, MAX_REF_HINT, "RefMsgInfo.Hint")
        rules.check_ext(command.ext)
        if command.priority is not None and not 0 <= command.priority <= 2:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "Priority must be 0, 1 or 2")
        if command.create_time is not None and command.create_time < 0:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "CreateTime must not be negative")
        for users, field in (
            (command.mentioned_users, "MentionedUsers"),
            (command.visible_users, "VisibleUsers"),
            (command.invisible_users, "InvisibleUsers"),
        ):
            _check_users(users, field)
        await self._policy.app(caller, command.app_id)
        now = self._clock()
        sender = command.sender
        ids = self._ids

        def work(uow: UnitOfWork) -> Message:
            # The lock makes senders of one conversation take turns, in every process: the
            # ClientMsgId lookup then sees any earlier send, and no index is taken twice.
            conversation = Policy.visible(
                uow, caller, command.app_id, command.conversation_id, lock=True
            )
            member = current_member(
                uow, conversation.id, sender,
                refusal=f"the sender {sender} is not a member of the conversation",
            )  # fmt: skip
            if member.block_time > now:
                raise ConvhubError(
                    ErrorCode.INVALID_PARAM,
                    f"the sender {sender} is muted until {member.block_time}",
                )
            if command.client_msg_id:
                sent = uow.messages.by_client_id(conversation.id, command.client_msg_id)
                if sent is not None:
                    return sent
            if command.ref_message_id:
                quoted = uow.messages.get(conversation.id, command.ref_message_id)
                if quoted is None or quoted.status is not MessageStatus.NORMAL:
                    raise _missing(command.ref_message_id)
            message_id = ids.next_id()
            index = uow.conversations.take_message_indexes(conversation.id, 1, message_id)
            millis = int(now * 1000)
            message = Message(
                id=message_id,
                conversation_id=conversation.id,
                index=index,
                sender=sender,
                msg_type=command.msg_type,
                content=command.content,
                ext=dict(command.ext or {}),
                status=MessageStatus.NORMAL,
                create_time=millis if command.create_time is None else command.create_time,
                update_time=millis,
                client_msg_id=command.client_msg_id or None,
                mentioned_users=command.mentioned_users,
                visible_users=command.visible_users,
                invisible_users=command.invisible_users,
                ref_message_id=command.ref_message_id or None,
                ref_hint=command.ref_hint or "",
                priority=command.priority or 0,
                section_id=conversation.section_id,
                content_type=_content_type(command.msg_type),
            )
            uow.messages.add_many([message])
            return message

        return await self._db.write(work, locks=command.conversation_id)

    async def conversation_messages(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        *,
        cursor: int,
        limit: int,
        reverse: bool,
    ) -> IndexPage:
        """Messages visible to all by index: from ``cursor`` up, or down (``reverse``; a
        cursor ≤ 0 starts at the newest). ``new_cursor`` is where the next page starts."""
        if limit <= 0:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "Limit must be positive")
        limit = min(limit, MAX_MESSAGE_PAGE)
        await self._policy.app(caller, app_id)
        start = (cursor if cursor > 0 else _INT64_MAX) if reverse else max(cursor, 0)

        def work(uow: UnitOfWork) -> tuple[Conversation, list[Quoted]]:
            conversation = Policy.visible(uow, caller, app_id, conversation_id)
            if conversation.type is ConversationType.LIVE_GROUP and not reverse:
                raise ConvhubError(
                    ErrorCode.INVALID_PARAM, "a live group's messages are read with Reverse 1"
                )
            found = uow.messages.by_index(
                conversation_id, start=start, descending=reverse, limit=limit + 1
            )
            return conversation, _quoted(uow, conversation_id, found)

        conversation, found = await self._db.read(work)
        page, has_more = found[:limit], len(found) > limit
        if not page:
            return IndexPage(conversation, [], False, cursor)
        last = page[-1].message.index
        return IndexPage(conversation, page, has_more, last - 1 if reverse else last + 1)

    async def get_messages(
        self, caller: Caller, app_id: int, conversation_id: int, message_ids: list[int]
    ) -> tuple[Conversation, list[Quoted]]:
        if not message_ids:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "MessageIds must not be empty")
        if len(message_ids) > MAX_GET_MESSAGES:
            raise ConvhubError(
                ErrorCode.INVALID_PARAM, f"MessageIds may hold at most {MAX_GET_MESSAGES} IDs"
            )
        await self._policy.app(caller, app_id)
        wanted = list(dict.fromkeys(message_ids))

        def work(uow: UnitOfWork) -> tuple[Conversation, list[Quoted]]:
            conversation = Policy.visible(uow, caller, app_id, conversation_id)
            found = {
                m.id: m
                for m in uow.messages.get_many(conversation_id, wanted)
                if m.status is MessageStatus.NORMAL
            }
            kept = [found[i] for i in wanted if i in found]
            return conversation, _quoted(uow, conversation_id, kept)

        return await self._db.read(work)

    async def recall_message(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        message_id: int,
        *,
        user: str,
        role: int,
    ) -> None:
        """A member recalls a message: its own (role 0), or anybody's as owner or admin (1, 2:
        as the caller asserts, like ``Operator`` elsewhere). Recalling twice is no error."""
        if role not in (0, 1, 2):
            raise ConvhubError(ErrorCode.INVALID_PARAM, "RecallRole must be 0, 1 or 2")
        await self._policy.app(caller, app_id)
        now = self._now_ms()

        def work(uow: UnitOfWork) -> None:
            Policy.visible(uow, caller, app_id, conversation_id)
            current_member(uow, conversation_id, user)
            message = uow.messages.get(conversation_id, message_id)
            if message is None or message.status in (
                MessageStatus.DELETED,
                MessageStatus.SENDER_ONLY,
            ):
                raise _missing(message_id)
            if message.status is MessageStatus.RECALLED:
                return
            if role == 0 and message.sender != user:
                raise ConvhubError(
                    ErrorCode.INVALID_PARAM, "a member may recall only its own messages"
                )
            message.status = MessageStatus.RECALLED
            message.update_time = max(now, message.update_time)
            uow.messages.update(message)

        await self._db.write(work)

    async def delete_conversation_message(
        self, caller: Caller, app_id: int, conversation_id: int, message_id: int, delete_type: int
    ) -> None:
        """For everyone (0), or for everyone but its sender (1; not in live groups)."""
        if delete_type not in (0, 1):
            raise ConvhubError(ErrorCode.INVALID_PARAM, "DeleteType must be 0 or 1")
        await self._policy.app(caller, app_id)
        now = self._now_ms()

        def work(uow: UnitOfWork) -> None:
            conversation = Policy.visible(uow, caller, app_id, conversation_id)
            if delete_type == 1 and conversation.type is ConversationType.LIVE_GROUP:
                raise ConvhubError(ErrorCode.INVALID_PARAM, "a live group deletes with type 0")
            message = uow.messages.get(conversation_id, message_id)
            if message is None or message.status in (
                MessageStatus.RECALLED,
                MessageStatus.DELETED,
            ):
                raise _missing(message_id)
            message.status = (
                MessageStatus.DELETED if delete_type == 0 else MessageStatus.SENDER_ONLY
            )
            message.update_time = max(now, message.update_time)
            uow.messages.update(message)

        await self._db.write(work)

    async def delete_message_for(
        self, caller: Caller, app_id: int, conversation_id: int, message_id: int, user: str
    ) -> None:
        """Gone for ``user`` alone; everybody else, and the server's view, keep it."""
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> None:
            Policy.visible(uow, caller, app_id, conversation_id)
            if uow.participants.get(conversation_id, user) is None:
                raise ConvhubError(
                    ErrorCode.PARTICIPANT_NOT_IN_CONVERSATION,
                    f"user {user} is not a member of conversation {conversation_id}",
                )
            if uow.messages.get(conversation_id, message_id) is None:
                raise _missing(message_id)
            uow.messages.hide(message_id, user)

        await self._db.write(work)

    async def modify_volc_message(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        message_id: int,
        *,
        ext: dict[str, str] | None,
        content: str | None,
    ) -> None:
        """``Ext`` merges per key (keys sent overwrite, others stay); ``Content`` replaces."""
        rules.check_ext(ext)
        rules.check_length(content, rules.MAX_MESSAGE_CONTENT, "Content")
        await self._policy.app(caller, app_id)
        now = self._now_ms()

        def work(uow: UnitOfWork) -> None:
            Policy.visible(uow, caller, app_id, conversation_id)
            message = _get_visible(uow, conversation_id, message_id)
            if ext is None and content is None:
                return
            if ext is not None:
                merged = {**message.ext, **ext}
                rules.check_ext(merged)
                message.ext = merged
            if content is not None:
                message.content = content
            message.update_time = max(now, message.update_time)
            uow.messages.update(message)

        await self._db.write(work)

    async def set_read_index(
        self, caller: Caller, app_id: int, conversation_id: int, user: str | None, index: int
    ) -> None:
        """A member's read position only moves forward."""
        if user is None:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "ParticipantUserId is required")
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> None:
            Policy.visible(uow, caller, app_id, conversation_id)
            current_member(uow, conversation_id, user)
            setting = uow.settings.get(conversation_id, user)
            setting = setting or ConversationSetting(conversation_id, user)
            if index <= setting.read_index:
                raise ConvhubError(
                    ErrorCode.INVALID_PARAM,
                    f"ReadIndex must be greater than the current {setting.read_index}",
                )
            setting.read_index = index
            uow.settings.save(setting)

        await self._db.write(work)

    async def read_indexes(
        self, caller: Caller, app_id: int, conversation_id: int
    ) -> list[tuple[str, int]]:
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> list[tuple[str, int]]:
            Policy.visible(uow, caller, app_id, conversation_id)
            return uow.settings.read_indexes(conversation_id)

        return await self._db.read(work)

    # --- Coze ----------------------------------------------------------------------------------

    async def create_message(
        self, caller: Caller, app_id: int, conversation_id: int, message: NewMessage
    ) -> Message:
        validate_new_message(message)
        user = Policy.user(caller)
        await self._policy.app(caller, app_id)
        now = self._now_ms()
        ids = self._ids

        def work(uow: UnitOfWork) -> Message:
            conversation = Policy.visible(uow, caller, app_id, conversation_id, members_too=True)
            message_id = ids.next_id()
            index = uow.conversations.take_message_indexes(conversation.id, 1, message_id)
            created = build_message(message_id, index, conversation, user, message, now)
            uow.messages.add_many([created])
            return created

        return await self._db.write(work)

    async def list_messages(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        *,
        descending: bool = True,
        chat_id: str | None = None,
        before_id: int | None = None,
        after_id: int | None = None,
        limit: int = 50,
    ) -> MessagePage:
        if not 1 <= limit <= rules.MAX_PAGE_SIZE:
            raise ConvhubError(ErrorCode.INVALID_PARAM, f"limit must be 1 to {rules.MAX_PAGE_SIZE}")
        rules.check_text(chat_id, "chat_id")
        await self._policy.app(caller, app_id)
        after = after_id or None
        before = before_id or None
        # "after" continues in the order asked; "before" alone walks back against it.
        backwards = before is not None and after is None
        if descending:
            above, below = before, after
        else:
            above, below = after, before
        ascending = (not descending) != backwards

        reader = Policy.user(caller)

        def work(uow: UnitOfWork) -> list[Message]:
            Policy.visible(uow, caller, app_id, conversation_id, members_too=True)
            low, high = above, below
            kept: list[Message] = []
            while len(kept) <= limit:  # what the reader may not see is skipped, not counted
                found, hidden, floor = uow.messages.page(
                    conversation_id, reader, above=low, below=high, ascending=ascending,
                    limit=limit + 1, chat_id=chat_id, statuses=_VOLC_READABLE,
                )  # fmt: skip
                kept += [m for m in found if seen_by(m, reader, hidden=hidden, history_floor=floor)]
                if len(found) <= limit:
                    break
                if ascending:
                    low = found[-1].id
                else:
                    high = found[-1].id
            return kept[: limit + 1]

        found = await self._db.read(work)
        has_more = len(found) > limit
        page = found[:limit]
        if backwards:
            page.reverse()
        return MessagePage(
            messages=page,
            first_id=str(page[0].id) if page else "",
            last_id=str(page[-1].id) if page else "",
            has_more=has_more,
        )

    async def get_message(
        self, caller: Caller, app_id: int, conversation_id: int, message_id: int
    ) -> Message:
        await self._policy.app(caller, app_id)

        reader = Policy.user(caller)

        def work(uow: UnitOfWork) -> Message:
            Policy.visible(uow, caller, app_id, conversation_id, members_too=True)
            return _seen(uow, conversation_id, message_id, reader)

        return await self._db.read(work)

    async def modify_message(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        message_id: int,
        *,
        content: str | None,
        content_type: str | None,
        meta_data: dict[str, str] | None,
    ) -> Message:
        """Changes what is given; ``meta_data`` replaces the message's whole map (Coze's rule)."""
        if content is None and meta_data is None:
            raise ConvhubError(
                ErrorCode.INVALID_PARAM, "content and meta_data cannot both be empty"
            )
        rules.check_meta_data(meta_data)
        await self._policy.app(caller, app_id)
        now = self._now_ms()

        def work(uow: UnitOfWork) -> Message:
            Policy.visible(uow, caller, app_id, conversation_id)
            message = _get_visible(uow, conversation_id, message_id)
            new_type = content_type or message.content_type
            new_content = message.content if content is None else content
            if content is not None or content_type is not None:
                _check_content(new_content, new_type)
            message.content, message.content_type = new_content, new_type
            message.msg_type = int(MSG_TYPES[new_type])
            if meta_data is not None:
                message.ext = dict(meta_data)
            message.update_time = max(now, message.update_time)
            uow.messages.update(message)
            return message

        return await self._db.write(work)

    async def delete_message(
        self, caller: Caller, app_id: int, conversation_id: int, message_id: int
    ) -> Message:
        """Hides it from everyone; the message stays stored."""
        await self._policy.app(caller, app_id)
        now = self._now_ms()

        def work(uow: UnitOfWork) -> Message:
            Policy.visible(uow, caller, app_id, conversation_id)
            message = _get_visible(uow, conversation_id, message_id)
            update_time = max(now, message.update_time)
            uow.messages.update(
                replace(message, status=MessageStatus.DELETED, update_time=update_time)
            )
            return message  # as it was: Coze answers the deleted message

        return await self._db.write(work)

    async def set_feedback(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        message_id: int,
        *,
        feedback_type: str,
        reason_types: list[str] | None,
        comment: str | None,
    ) -> None:
        if feedback_type not in FEEDBACK_TYPES:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "feedback_type must be like or unlike")
        rules.check_length(comment, rules.MAX_DESCRIPTION, "comment")
        for reason in reason_types or []:
            rules.check_length(reason, rules.MAX_ID_TEXT, "reason_types")
        user = Policy.user(caller)
        await self._policy.app(caller, app_id)
        feedback = Feedback(
            message_id=message_id,
            user=user,
            feedback_type=feedback_type,
            reason_types=tuple(reason_types or ()),
            comment=comment or "",
            create_time=int(self._clock()),
        )

        def work(uow: UnitOfWork) -> None:
            Policy.visible(uow, caller, app_id, conversation_id, members_too=True)
            _seen(uow, conversation_id, message_id, user)
            uow.messages.set_feedback(feedback)

        await self._db.write(work)

    async def delete_feedback(
        self, caller: Caller, app_id: int, conversation_id: int, message_id: int
    ) -> None:
        user = Policy.user(caller)
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> None:
            Policy.visible(uow, caller, app_id, conversation_id, members_too=True)
            _seen(uow, conversation_id, message_id, user)
            uow.messages.delete_feedback(message_id, user)

        await self._db.write(work)
