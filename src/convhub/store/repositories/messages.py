"""Messages of conversations, and the feedback users leave on them.

A read-only unit's pages keep what they read (store/kept.py) as BatchGetConversations keeps
conversations: a page asks for its messages' ``(id, version)`` pairs, then in full only for those
not kept at that version. Every update raises a message's version, so a kept message is used only
while the database still holds exactly it, in any number of processes; nothing needs to forget it.
Only messages whose text columns hold at most ``KEPT_TEXT`` characters in all are kept, so that the
memory a kept message takes stays small (content alone may be 100,000 characters).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import String, bindparam, exists, func, literal_column, or_, select, update

from convhub.domain.models import Feedback, Message, MessageStatus
from convhub.domain.ports import ReaderPage
from convhub.store.driver import InList, fast
from convhub.store.kept import KeptRows, in_order
from convhub.store.mapping import JSON, STRINGS, Mapper, enum
from convhub.store.session import Session
from convhub.store.tables import message_feedback, message_hides, messages, participants

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
_SELECT_ONE = fast(
    _SELECT.where(m.id == bindparam("id"), m.conversation_id == bindparam("conversation_id"))
)
_SELECT_MANY = InList(
    _SELECT.where(m.conversation_id == bindparam("conversation_id")).where, m.id, "ids"
)
_BY_CLIENT_ID = fast(
    _SELECT.where(
        m.conversation_id == bindparam("conversation_id"),
        m.client_msg_id == bindparam("client_msg_id"),
    )
)
_BY_INDEX = {
    False: _SELECT.where(
        m.conversation_id == bindparam("conversation_id"),
        m.message_index >= bindparam("start"),
        m.status == _VISIBLE,
    )
    .order_by(m.message_index.asc())
    .limit(bindparam("limit")),
    True: _SELECT.where(
        m.conversation_id == bindparam("conversation_id"),
        m.message_index <= bindparam("start"),
        m.status == _VISIBLE,
    )
    .order_by(m.message_index.desc())
    .limit(bindparam("limit")),
}
# The same, of the (id, version) pairs alone: for read-only units, which keep what they read.
_BY_INDEX_VERSIONS = {
    descending: statement.with_only_columns(m.id, m.version)
    for descending, statement in _BY_INDEX.items()
}
for _statement in (*_BY_INDEX.values(), *_BY_INDEX_VERSIONS.values()):
    fast(_statement)
_h = message_hides.c
_HIDE = fast(message_hides.insert())
# The IDs asked about lie between low and high: a range, not an IN list, so that the statement
# is prebuilt; the caller keeps the ones it asked about.
_HIDDEN = fast(
    select(_h.message_id).where(
        _h.user_id == bindparam("user"),
        _h.message_id >= bindparam("low"),
        _h.message_id <= bindparam("high"),
    )
)
_PAGES: dict[tuple[bool, bool, bool, bool, tuple[int, ...], bool], Any] = {}
# What the reader's visibility needs, beside each row of a page: whether the reader hid the
# message, and the reader's history floor (the same on every row; 0 if not a member). In the
# page's statement, not two of their own: on PostgreSQL each statement is a round trip and
# psycopg's work, and these two were half of a Coze message list's four.
_p = participants.c
_READER_COLUMNS = (
    exists().where(_h.message_id == m.id, _h.user_id == bindparam("reader")).label("hidden"),
    func.coalesce(
        select(_p.history_floor)
        .where(
            _p.conversation_id == bindparam("conversation_id"), _p.user_id == bindparam("reader")
        )
        .scalar_subquery(),
        0,
    ).label("history_floor"),
)
_SELECT_MANY_VERSIONED = InList(select(m.version, *MAPPER.columns).where, m.id, "ids")
KEPT_TEXT = 4096
_TEXT_COLUMNS = tuple(i for i, c in enumerate(MAPPER.columns) if isinstance(c.type, String))


def _page_statement(
    ascending: bool,
    above: bool,
    below: bool,
    chat: bool,
    statuses: tuple[int, ...],
    versions: bool = False,
) -> Any:
    """The page query for one combination of bounds, built and compiled once; with ``versions``,
    of the ``(id, version)`` pairs alone; each row followed by ``_READER_COLUMNS``."""
    key = (ascending, above, below, chat, statuses, versions)
    found = _PAGES.get(key)
    if found is None:
        shown = (m.id, m.version) if versions else MAPPER.columns
        query = select(*shown, *_READER_COLUMNS).where(
            m.conversation_id == bindparam("conversation_id"),
            or_(*(m.status == status for status in statuses)),
        )
        if above:
            query = query.where(m.id > bindparam("above"))
        if below:
            query = query.where(m.id < bindparam("below"))
        if chat:
            query = query.where(m.chat_id == bindparam("chat_id"))
        order = m.id.asc() if ascending else m.id.desc()
        found = _PAGES[key] = fast(query.order_by(order).limit(bindparam("limit")))
    return found


_INSERT = fast(messages.insert())
_BUMP = m.version + literal_column("1")
_UPDATE = fast(update(messages).where(m.id == bindparam("b_id")).values(version=_BUMP))
_DELETE_FEEDBACK = fast(
    message_feedback.delete().where(
        message_feedback.c.message_id == bindparam("message_id"),
        message_feedback.c.user_id == bindparam("user"),
    )
)
_INSERT_FEEDBACK = fast(message_feedback.insert())


def _small(row: Sequence[Any]) -> bool:
    return sum(len(row[i] or "") for i in _TEXT_COLUMNS) <= KEPT_TEXT


class SqlMessages:
    __slots__ = ("_kept", "_session")

    def __init__(self, session: Session, kept: KeptRows[int, Message] | None = None) -> None:
        self._session = session
        self._kept = kept  # read-only units only

    def add_many(self, new: Sequence[Message]) -> None:
        self._session.hold(_INSERT, [MAPPER.dump(message) for message in new])

    def get(self, conversation_id: int, message_id: int) -> Message | None:
        params = {"id": message_id, "conversation_id": conversation_id}
        row = self._session.read(_SELECT_ONE, params).first()
        return None if row is None else MAPPER.load(row)

    def get_many(self, conversation_id: int, message_ids: Sequence[int]) -> list[Message]:
        if not message_ids:
            return []
        statement = _SELECT_MANY.bind(
            self._session.dialect, message_ids, conversation_id=conversation_id
        )
        return [MAPPER.load(row) for row in self._session.read(*statement)]

    def by_client_id(self, conversation_id: int, client_msg_id: str) -> Message | None:
        params = {"conversation_id": conversation_id, "client_msg_id": client_msg_id}
        row = self._session.read(_BY_CLIENT_ID, params).first()
        return None if row is None else MAPPER.load(row)

    def by_index(
        self, conversation_id: int, *, start: int, descending: bool, limit: int
    ) -> list[Message]:
        """Messages visible to all from index ``start`` on (down, if ``descending``)."""
        params = {"conversation_id": conversation_id, "start": start, "limit": limit}
        if self._kept is not None:
            pairs = self._session.read(_BY_INDEX_VERSIONS[descending], params)
            return self._kept_or_read(pairs, (_VISIBLE,))
        return [MAPPER.load(row) for row in self._session.read(_BY_INDEX[descending], params)]

    def hide(self, message_id: int, user: str) -> None:
        if not self.hidden_for(user, [message_id]):
            self._session.change(_HIDE, {"message_id": message_id, "user_id": user})

    def hidden_for(self, user: str, message_ids: Sequence[int]) -> set[int]:
        if not message_ids:
            return set()
        params = {"user": user, "low": min(message_ids), "high": max(message_ids)}
        asked = set(message_ids)
        return {i for i in self._session.read(_HIDDEN, params).scalars() if i in asked}

    def page(
        self,
        conversation_id: int,
        reader: str,
        *,
        above: int | None,
        below: int | None,
        ascending: bool,
        limit: int,
        chat_id: str | None,
        statuses: tuple[int, ...] = (),
    ) -> ReaderPage:
        statuses = statuses or (_VISIBLE,)
        keeps = self._kept is not None
        statement = _page_statement(
            ascending, above is not None, below is not None, chat_id is not None, statuses, keeps
        )
        params = {
            "conversation_id": conversation_id, "above": above, "below": below,
            "chat_id": chat_id, "limit": limit, "reader": reader,
        }  # fmt: skip
        rows = list(self._session.read(statement, params))
        hidden = {row[0] for row in rows if row[-2]}
        floor = rows[0][-1] if rows else 0
        if keeps:
            found = self._kept_or_read([(row[0], row[1]) for row in rows], statuses)
        else:
            found = [MAPPER.load(row[:-2]) for row in rows]
        return ReaderPage(found, hidden, floor)

    def _kept_or_read(
        self, pairs: Iterable[tuple[int, int]], statuses: tuple[int, ...]
    ) -> list[Message]:
        """The messages of these ``(id, version)`` pairs, in their order: the kept ones as they
        are, the others read in full (at their newest version) in one statement, and kept if
        small."""
        kept = self._kept
        assert kept is not None
        since = kept.generation
        found, missing = kept.resolve(pairs)
        if not missing:
            return cast(list[Message], found)
        read: dict[int, Message] = {}
        keep = []
        session = self._session
        for version, *row in session.read(*_SELECT_MANY_VERSIONED.bind(session.dialect, missing)):
            message = MAPPER.load(row)
            # On PostgreSQL each read is a snapshot of its own: a message that changed between
            # the two reads is kept at its new version, but left out where its status no longer
            # belongs to the page, as if the first read had not seen it.
            if message.status in statuses:
                read[message.id] = message
            if _small(row):
                keep.append((message.id, version, message))
        kept.put_many(keep, since=since)
        return in_order(found, read, Message)

    def update(self, message: Message) -> None:
        values = MAPPER.dump(message, _MUTABLE)
        values["b_id"] = message.id
        self._session.change(_UPDATE, values)

    def set_feedback(self, feedback: Feedback) -> None:
        params = {"message_id": feedback.message_id, "user": feedback.user}
        self._session.write(_DELETE_FEEDBACK, params)
        self._session.write(_INSERT_FEEDBACK, FEEDBACK.dump(feedback))

    def delete_feedback(self, message_id: int, user: str) -> bool:
        params = {"message_id": message_id, "user": user}
        return bool(self._session.write(_DELETE_FEEDBACK, params).rowcount)
