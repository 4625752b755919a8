"""Members of conversations: who, in which role, joined when, and in what order."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, cast, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from convhub.domain.models import Participant, ParticipantStatus, Role
from convhub.store.driver import InList, fast
from convhub.store.mapping import FLAG, JSON, Mapper, enum
from convhub.store.session import Session
from convhub.store.tables import participants

p = participants.c
MAPPER = Mapper(
    participants,
    Participant,
    renamed={"user": "user_id"},
    codecs={
        "role": enum(Role),
        "status": enum(ParticipantStatus),
        "ext": JSON,
        "in_group_limit": FLAG,
    },
)
_NORMAL = int(ParticipantStatus.NORMAL)
_INSERT = fast(participants.insert())
_SELECT = select(*MAPPER.columns)
_SELECT_ONE = fast(
    _SELECT.where(p.conversation_id == bindparam("conversation_id"), p.user_id == bindparam("user"))
)
_SELECT_MANY = InList(
    _SELECT.where(p.conversation_id == bindparam("conversation_id")).where, p.user_id, "users"
)
_UPDATE = fast(
    update(participants).where(
        p.conversation_id == bindparam("b_conversation_id"), p.user_id == bindparam("b_user")
    )
)
_UNCOUNT = fast(update(participants).where(p.conversation_id == bindparam("b_conversation_id")))
_PAGE = _SELECT.where(p.conversation_id == bindparam("conversation_id"), p.status == _NORMAL)
_STAFF = (int(Role.OWNER), int(Role.ADMIN))
# (descending, staff only) -> the page statement
_PAGES = {
    (descending, staff): fast(
        (_PAGE.where(or_(*(p.role == role for role in _STAFF))) if staff else _PAGE)
        .where(p.join_seq < bindparam("cursor") if descending else p.join_seq > bindparam("cursor"))
        .order_by(p.join_seq.desc() if descending else p.join_seq.asc())
        .limit(bindparam("limit"))
    )
    for descending in (False, True)
    for staff in (False, True)
}
_COUNT_USER_GROUPS = fast(
    select(func.count()).where(
        p.app_id == bindparam("app_id"),
        p.user_id == bindparam("user"),
        p.status == _NORMAL,
        p.in_group_limit == 1,
    )
)
# On PostgreSQL one look into the index for each user, as _COUNT_USER_GROUPS does: the plan
# PostgreSQL keeps for "user_id = ANY(…)" read every membership of the app (4.3 ms to count about
# 20 owners, where one counted alone took 12 µs).
_USERS = (
    func.unnest(cast(bindparam("users"), ARRAY(p.user_id.type)))
    .table_valued("user_id")
    .render_derived()
)
_COUNT_GROUPS = InList(
    lambda users: (
        select(p.user_id, func.count())
        .where(p.app_id == bindparam("app_id"), users, p.status == _NORMAL, p.in_group_limit == 1)
        .group_by(p.user_id)
    ),
    p.user_id,
    "users",
    postgresql=select(
        _USERS.c.user_id,
        select(func.count())
        .where(
            p.app_id == bindparam("app_id"),
            p.user_id == _USERS.c.user_id,
            p.status == _NORMAL,
            p.in_group_limit == 1,
        )
        .scalar_subquery(),
    ),
)


def _in_group_limit(row: Mapping[str, Any]) -> tuple[int, str] | None:
    """(app, user) of a membership row that counts toward the user's limit of groups."""
    if row["in_group_limit"] and row["status"] == _NORMAL:
        return row["app_id"], row["user_id"]
    return None


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

    def get_many(self, conversation_id: int, users: Sequence[str]) -> list[Participant]:
        if not users:
            return []
        statement = _SELECT_MANY.bind(self._session.dialect, users, conversation_id=conversation_id)
        return [MAPPER.load(row) for row in self._session.read(*statement)]

    def update(self, member: Participant, fields: tuple[str, ...]) -> None:
        values = MAPPER.dump(member, fields)
        values["b_conversation_id"] = member.conversation_id
        values["b_user"] = member.user
        self._session.change(_UPDATE, values)

    def update_many(self, members: Sequence[Participant], fields: tuple[str, ...]) -> None:
        rows = []
        for member in members:
            values = MAPPER.dump(member, fields)
            values["b_conversation_id"] = member.conversation_id
            values["b_user"] = member.user
            rows.append(values)
        if rows:
            self._session.change(_UPDATE, rows)

    def page(
        self,
        conversation_id: int,
        *,
        cursor: int,
        descending: bool,
        limit: int,
        staff_only: bool,
    ) -> list[Participant]:
        """Current members past ``cursor`` in join order (newest first if ``descending``)."""
        params = {"conversation_id": conversation_id, "cursor": cursor, "limit": limit}
        rows = self._session.read(_PAGES[descending, staff_only], params)
        return [MAPPER.load(row) for row in rows]

    def leave_group_limit(self, conversation_id: int) -> None:
        params = {"b_conversation_id": conversation_id, "in_group_limit": 0}
        self._session.change(_UNCOUNT, params)

    def check_groups(self, app_id: int, user: str, check: Callable[[int], None]) -> None:
        """``check`` the user's count of groups (as ``groups_of``), at once or before the batch
        commits (``Session.check_grouped``, one statement for a batch's creates, under the lock
        that every change of the count takes: ``user_groups_lock``), or at once where the writer
        answers checks at once: creates of groups need not wait for it."""
        held = self._held_groups(app_id, {user}).get(user, 0)

        def counted(found: int | None) -> None:
            check((found or 0) + held)

        if self._session.groups_checks:  # one count of a batch's owners
            self._session.check_grouped(_COUNT_GROUPS, user, counted, app_id=app_id)
            return
        params = {"app_id": app_id, "user": user}
        self._session.check_around_held(_COUNT_USER_GROUPS, params, counted)

    def groups_of(self, app_id: int, users: Sequence[str]) -> dict[str, int]:
        """How many groups that count toward the limit each user is a current member of.

        Asked at every group's creation: the stored rows are counted without writing the held-
        back members first (that would write each create's rows alone and undo group commit),
        and the held-back rows, all new memberships, are added here."""
        if not users:
            return {}
        if len(users) == 1:
            params: dict[str, Any] = {"app_id": app_id, "user": users[0]}
            found = self._session.scalar_around_held(_COUNT_USER_GROUPS, params)
            counts = {users[0]: found} if found else {}
        else:
            self._session.flush()  # adding members: not the hot path
            statement = _COUNT_GROUPS.bind(self._session.dialect, users, app_id=app_id)
            rows = self._session.read(*statement)
            counts = {user: count for user, count in rows}
        for user, held in self._held_groups(app_id, set(users)).items():
            counts[user] = counts.get(user, 0) + held
        return counts

    def _held_groups(self, app_id: int, users: set[str]) -> dict[str, int]:
        """The held-back memberships of ``users`` that count toward their limit of groups."""
        tally = self._session.held_tally(_INSERT, _in_group_limit)
        return {user: held for user in users if (held := tally.get((app_id, user)))}
