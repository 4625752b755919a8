"""Members of conversations."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select, update

from convhub.domain.models import Participant, ParticipantStatus, Role
from convhub.store.mapping import Mapper, enum
from convhub.store.session import Session
from convhub.store.tables import participants

p = participants.c
MAPPER = Mapper(
    participants,
    Participant,
    renamed={"user": "user_id"},
    codecs={"role": enum(Role), "status": enum(ParticipantStatus)},
)
_INSERT = participants.insert()
_SELECT_ONE = select(*MAPPER.columns).where(
    p.conversation_id == bindparam("conversation_id"), p.user_id == bindparam("user")
)
_UPDATE = update(participants).where(
    p.conversation_id == bindparam("b_conversation_id"), p.user_id == bindparam("b_user")
)


class SqlParticipants:
    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    def add_many(self, members: Sequence[Participant]) -> None:
        self._session.hold(_INSERT, [MAPPER.dump(m) for m in members])

    def get(self, conversation_id: int, user: str) -> Participant | None:
        params = {"conversation_id": conversation_id, "user": user}
        row = self._session.read(_SELECT_ONE, params).first()
        return None if row is None else MAPPER.load(row)

    def set_role(self, conversation_id: int, user: str, role: Role) -> None:
        params = {"b_conversation_id": conversation_id, "b_user": user, "role": int(role)}
        self._session.write(_UPDATE, params)
