"""Each member's own settings of a conversation; absent until first changed."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from convhub.domain.models import ConversationSetting, ParticipantStatus
from convhub.store.driver import fast
from convhub.store.mapping import FLAG, JSON, Mapper
from convhub.store.session import Session
from convhub.store.tables import conversation_settings, participants

s = conversation_settings.c
MAPPER = Mapper(
    conversation_settings,
    ConversationSetting,
    renamed={"user": "user_id"},
    codecs={"is_mute": FLAG, "ext": JSON},
)
_SELECT_ONE = fast(
    select(*MAPPER.columns).where(
        s.conversation_id == bindparam("conversation_id"), s.user_id == bindparam("user")
    )
)
_p = participants.c
_READ_INDEXES = (
    select(s.user_id, s.read_index)
    .join(participants, (_p.conversation_id == s.conversation_id) & (_p.user_id == s.user_id))
    .where(
        s.conversation_id == bindparam("conversation_id"),
        s.read_index > 0,
        _p.status == int(ParticipantStatus.NORMAL),
    )
    .order_by(s.user_id)
)
_COLUMNS = ("is_mute", "stick_top_time", "favorite_time", "ext", "read_index")
_UPSERT = {}
for _name, _dialect in (("postgresql", postgresql), ("sqlite", sqlite)):
    _insert = _dialect.insert(conversation_settings)
    _UPSERT[_name] = fast(
        _insert.on_conflict_do_update(
            index_elements=["conversation_id", "user_id"],
            set_={column: getattr(_insert.excluded, column) for column in _COLUMNS},
        )
    )


class SqlSettings:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, conversation_id: int, user: str) -> ConversationSetting | None:
        params = {"conversation_id": conversation_id, "user": user}
        row = self._session.read(_SELECT_ONE, params).first()
        return None if row is None else MAPPER.load(row)

    def read_indexes(self, conversation_id: int) -> list[tuple[str, int]]:
        """Current members' read indexes above 0."""
        params = {"conversation_id": conversation_id}
        return [(user, index) for user, index in self._session.read(_READ_INDEXES, params)]

    def save(self, setting: ConversationSetting) -> None:
        self._session.change(_UPSERT[self._session.dialect], MAPPER.dump(setting))
