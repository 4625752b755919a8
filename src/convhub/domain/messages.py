"""Messages of a conversation: create, page through, read, modify, delete, and feedback on them.

Paging follows the order asked for: ``after_id`` continues past that message in that order (older
ones when newest-first, newer ones when oldest-first) and ``before_id`` gives the page just before
it. A page knows whether more lie beyond it in its direction, so that following ``last_id`` (or
``first_id`` backwards) walks every message exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import orjson

from convhub.domain import rules
from convhub.domain.caller import Caller
from convhub.domain.commands import NewMessage
from convhub.domain.models import (
    Conversation,
    Feedback,
    Message,
    MessageStatus,
    MsgType,
)
from convhub.domain.policy import Policy
from convhub.domain.ports import Database, IdSource, UnitOfWork
from convhub.errors import ConvhubError, ErrorCode

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


def _get_visible(uow: UnitOfWork, conversation_id: int, message_id: int) -> Message:
    message = uow.messages.get(conversation_id, message_id)
    if message is None:
        raise ConvhubError(ErrorCode.MESSAGE_NOT_FOUND, f"message {message_id} does not exist")
    return message


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

    @staticmethod
    def _conversation(
        uow: UnitOfWork, caller: Caller, app_id: int, conversation_id: int
    ) -> Conversation:
        found = uow.conversations.get(conversation_id)
        return Policy.conversation(caller, app_id, conversation_id, found)

    async def create_message(
        self, caller: Caller, app_id: int, conversation_id: int, message: NewMessage
    ) -> Message:
        validate_new_message(message)
        user = Policy.user(caller)
        await self._policy.app(caller, app_id)
        now = self._now_ms()
        ids = self._ids

        def work(uow: UnitOfWork) -> Message:
            conversation = self._conversation(uow, caller, app_id, conversation_id)
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

        def work(uow: UnitOfWork) -> list[Message]:
            self._conversation(uow, caller, app_id, conversation_id)
            return uow.messages.page(
                conversation_id,
                above=above,
                below=below,
                ascending=ascending,
                limit=limit + 1,
                chat_id=chat_id,
            )

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

        def work(uow: UnitOfWork) -> Message:
            self._conversation(uow, caller, app_id, conversation_id)
            return _get_visible(uow, conversation_id, message_id)

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
            self._conversation(uow, caller, app_id, conversation_id)
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
            self._conversation(uow, caller, app_id, conversation_id)
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
            self._conversation(uow, caller, app_id, conversation_id)
            _get_visible(uow, conversation_id, message_id)
            uow.messages.set_feedback(feedback)

        await self._db.write(work)

    async def delete_feedback(
        self, caller: Caller, app_id: int, conversation_id: int, message_id: int
    ) -> None:
        user = Policy.user(caller)
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> None:
            self._conversation(uow, caller, app_id, conversation_id)
            _get_visible(uow, conversation_id, message_id)
            uow.messages.delete_feedback(message_id, user)

        await self._db.write(work)
