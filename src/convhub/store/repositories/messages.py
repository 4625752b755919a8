"""Messages of conversations, and the feedback users leave on them."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select, update

from convhub.domain.models import Feedback, Message, MessageStatus
from convhub.store.mapping import JSON, STRINGS, Mapper, enum
from convhub.store.session import Session
from convhub.store.tables import message_feedback, messages

m = messages.c
MAPPER = Mapper(
    messages,
    Message,
    renamed={"index": "message_index"},
    codecs={
        "ext": JSON,
        "status": enum(MessageStatus),
        "mentioned_users": STRINGS,
        "visible_users": STRINGS,
        "invisible_users": STRINGS,
    },
)
FEEDBACK = Mapper(
    message_feedback, Feedback, renamed={"user": "user_id"}, codecs={"reason_types": STRINGS}
)
_MUTABLE = ("content", "content_type", "msg_type", "ext", "status", "update_time")
_VISIBLE = int(MessageStatus.NORMAL)

_SELECT = select(*MAPPER.columns)
_SELECT_ONE = _SELECT.where(
    m.id == bindparam("id"),
    m.conversation_id == bindparam("conversation_id"),
    m.status == _VISIBLE,
)
_INSERT = messages.insert()
_UPDATE = update(messages).where(m.id == bindparam("b_id"))
_DELETE_FEEDBACK = message_feedback.delete().where(
    message_feedback.c.message_id == bindparam("message_id"),
    message_feedback.c.user_id == bindparam("user"),
)
_INSERT_FEEDBACK = message_feedback.insert()


class SqlMessages:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_many(self, new: Sequence[Message]) -> None:
        self._session.hold(_INSERT, [MAPPER.dump(message) for message in new])

    def get(self, conversation_id: int, message_id: int) -> Message | None:
        params = {"id": message_id, "conversation_id": conversation_id}
        row = self._session.read(_SELECT_ONE, params).first()
        return None if row is None else MAPPER.load(row)

    def page(
        self,
        conversation_id: int,
        *,
        above: int | None,
        below: int | None,
        ascending: bool,
        limit: int,
        chat_id: str | None,
    ) -> list[Message]:
        query = _SELECT.where(m.conversation_id == conversation_id, m.status == _VISIBLE)
        if above is not None:
            query = query.where(m.id > above)
        if below is not None:
            query = query.where(m.id < below)
        if chat_id is not None:
            query = query.where(m.chat_id == chat_id)
        query = query.order_by(m.id.asc() if ascending else m.id.desc()).limit(limit)
        return [MAPPER.load(row) for row in self._session.read(query).all()]

    def update(self, message: Message) -> None:
        values = MAPPER.dump(message, _MUTABLE)
        values["b_id"] = message.id
        self._session.write(_UPDATE, values)

    def set_feedback(self, feedback: Feedback) -> None:
        params = {"message_id": feedback.message_id, "user": feedback.user}
        self._session.write(_DELETE_FEEDBACK, params)
        self._session.write(_INSERT_FEEDBACK, FEEDBACK.dump(feedback))

    def delete_feedback(self, message_id: int, user: str) -> bool:
        params = {"message_id": message_id, "user": user}
        return bool(self._session.write(_DELETE_FEEDBACK, params).rowcount)
