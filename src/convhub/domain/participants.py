"""Members of a conversation: add, remove, change, read, page through, count.

Every change to a conversation's members runs with the conversation's row locked and writes the
members and the conversation's ``member_count`` in the same transaction, so ``MemberCount``
always equals the number of current members, whatever runs beside it in this or another process.

A batch is applied for every user it can be, and answers the others in ``failed`` (the wire's
``FailedUserIds``); what stops the whole batch (an unknown conversation, a single chat, the member
cap) raises before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from convhub.domain import rules
from convhub.domain.caller import Caller
from convhub.domain.conversations import counts_toward_group_limit, user_groups_lock
from convhub.domain.limits import ProductLimits
from convhub.domain.models import (
    Conversation,
    ConversationSetting,
    ConversationType,
    Participant,
    ParticipantStatus,
    Role,
)
from convhub.domain.policy import Policy
from convhub.domain.ports import Database, UnitOfWork
from convhub.errors import ConvhubError, ErrorCode

MAX_BATCH = 100  # users per add, delete or modify (undocumented upstream; convhub's choice)
MAX_SCAN = 20
MAX_SCAN_IDS = 50  # with OnlyUserIds
MAX_NICK_NAME = 128
_ROLES = {int(r) for r in Role}
_NORMAL = ParticipantStatus.NORMAL


@dataclass(frozen=True, slots=True)
class MemberChange:
    """One ``ParticipantInfo``: fields left None are not changed (or take their default)."""

    user_id: int
    nick_name: str | None = None
    level: int | None = None
    role: int | None = None
    ext: dict[str, str] | None = None
    read_index: int | None = None  # add only
    block_time: int | None = None  # modify only


@dataclass(frozen=True, slots=True)
class MemberPage:
    members: list[Participant]
    has_more: bool
    next_cursor: int  # -1 when nothing is left


def _role(value: int | None) -> Role | None:
    """A role as given; one that is not 0, 1 or 2 counts as 0 (member), as documented."""
    if value is None:
        return None
    return Role(value) if value in _ROLES else Role.MEMBER


def _check_batch(size: int) -> None:
    if size == 0:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "the batch names no participant")
    if size > MAX_BATCH:
        raise ConvhubError(
            ErrorCode.INVALID_PARAM, f"a batch may name at most {MAX_BATCH} participants"
        )


def _check_change(change: MemberChange) -> None:
    rules.check_length(change.nick_name, MAX_NICK_NAME, "NickName")
    rules.check_ext(change.ext)
    if change.block_time is not None and change.block_time < 0:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "BlockTime must not be negative")
    if change.read_index is not None and change.read_index < 0:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "ReadIndex must not be negative")


def _last_wins(changes: Sequence[MemberChange]) -> list[MemberChange]:
    return list({c.user_id: c for c in changes}.values())


class ParticipantService:
    def __init__(
        self,
        *,
        db: Database,
        clock: Callable[[], float],
        policy: Policy,
        limits: ProductLimits | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._policy = policy
        self._limits = limits or ProductLimits()

    def _cap(self, conversation: Conversation) -> int:
        if conversation.type is ConversationType.LIVE_GROUP:
            return self._limits.max_live_group_members
        return self._limits.max_group_members

    @staticmethod
    def _locked(uow: UnitOfWork, caller: Caller, app_id: int, conversation_id: int) -> Conversation:
        conversation = Policy.visible(uow, caller, app_id, conversation_id, lock=True)
        if conversation.type is ConversationType.SINGLE:
            raise ConvhubError(
                ErrorCode.SINGLE_CONVERSATION_NOT_SUPPORTED,
                "the members of a single chat cannot change",
            )
        return conversation

    async def batch_add(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        *,
        operator: str,
        changes: Sequence[MemberChange],
        barrier: bool = False,
    ) -> list[int]:
        _check_batch(len(changes))
        for change in changes:
            _check_change(change)
        await self._policy.app(caller, app_id)
        now = int(self._clock())
        wanted = _last_wins(changes)
        limits = self._limits

        def work(uow: UnitOfWork) -> list[int]:
            conversation = self._locked(uow, caller, app_id, conversation_id)
            for change in wanted:
                if _role(change.role) is Role.OWNER and str(change.user_id) != conversation.owner:
                    raise ConvhubError(
                        ErrorCode.OWNER_SHOULD_BE_EQUAL,
                        f"user {change.user_id} is not the owner: transfer ownership with "
                        "ModifyConversation",
                    )
            failed = [c.user_id for c in wanted if c.user_id <= 0]
            valid = [c for c in wanted if c.user_id > 0]
            users = [str(c.user_id) for c in valid]
            existing = {p.user: p for p in uow.participants.get_many(conversation.id, users)}
            joining = [u for u in users if u not in existing or existing[u].status is not _NORMAL]
            if conversation.member_count + len(joining) > self._cap(conversation):
                raise ConvhubError(
                    ErrorCode.TOO_MANY_PARTICIPANTS,
                    f"a conversation of this type holds at most {self._cap(conversation)} members",
                )
            full: set[str] = set()
            if counts_toward_group_limit(conversation):
                uow.lock(*(user_groups_lock(app_id, user) for user in joining))
                counts = uow.participants.groups_of(app_id, joining)
                full = {u for u in joining if counts.get(u, 0) >= limits.max_user_groups}
            added: list[Participant] = []
            changed: list[Participant] = []
            seq = conversation.last_join_seq
            joined = 0
            for change, user in zip(valid, users, strict=True):
                if user in full:
                    failed.append(change.user_id)
                    continue
                role = Role.OWNER if user == conversation.owner else _role(change.role)
                member = existing.get(user)
                rejoins = member is None or member.status is not _NORMAL
                if rejoins:
                    seq += 1
                    joined += 1
                if member is None:
                    member = Participant(
                        conversation.id, user, role or Role.MEMBER, operator, now,
                        app_id=conversation.app_id,
                        in_group_limit=counts_toward_group_limit(conversation),
                    )  # fmt: skip
                    added.append(member)
                else:
                    changed.append(member)
                    member.role = role or Role.MEMBER
                    member.operator = operator
                    if rejoins:
                        member.status = _NORMAL
                        member.create_time = now
                # Adding a member again overwrites what it is given (the documented rule).
                member.nick_name = change.nick_name or ""
                member.level = change.level or 0
                member.ext = dict(change.ext or {})
                if rejoins:
                    member.join_seq = seq
                    member.block_time = 0
                    member.history_floor = conversation.last_message_index if barrier else 0
            uow.participants.update_many(
                changed,
                (
                    "role", "operator", "status", "create_time", "nick_name", "level", "ext",
                    "join_seq", "block_time", "history_floor",
                ),
            )  # fmt: skip
            uow.participants.add_many(added)
            for change in valid:
                if change.read_index is not None and str(change.user_id) not in full:
                    setting = uow.settings.get(conversation.id, str(change.user_id))
                    setting = setting or ConversationSetting(conversation.id, str(change.user_id))
                    setting.read_index = change.read_index
                    uow.settings.save(setting)
            if joined:
                conversation.member_count += joined
                conversation.last_join_seq = seq
                uow.conversations.update(conversation, ("member_count", "last_join_seq"))
            return failed

        return await self._db.write(work, locks=conversation_id)

    async def batch_delete(
        self, caller: Caller, app_id: int, conversation_id: int, *, operator: str,
        user_ids: Sequence[int],
    ) -> list[int]:  # fmt: skip
        """Current members leave (status 1); the owner stays and is answered as failed;
        anybody who is not a member is ignored."""
        _check_batch(len(user_ids))
        await self._policy.app(caller, app_id)
        users = list(dict.fromkeys(str(u) for u in user_ids if u > 0))

        def work(uow: UnitOfWork) -> list[int]:
            conversation = self._locked(uow, caller, app_id, conversation_id)
            failed = [int(conversation.owner)] if conversation.owner in users else []
            leaving = [
                p
                for p in uow.participants.get_many(conversation.id, users)
                if p.status is _NORMAL and p.user != conversation.owner
            ]
            for member in leaving:
                member.status = ParticipantStatus.EXITED
                member.operator = operator
            uow.participants.update_many(leaving, ("status", "operator"))
            if leaving:
                conversation.member_count -= len(leaving)
                uow.conversations.update(conversation, ("member_count",))
            return failed

        return await self._db.write(work, locks=conversation_id)

    async def batch_modify(
        self, caller: Caller, app_id: int, conversation_id: int, *, operator: str,
        changes: Sequence[MemberChange],
    ) -> list[int]:  # fmt: skip
        """Changes the fields given of current members; ``Ext`` merges per key. Users who are
        not current members, and role changes that only an owner transfer may make, fail."""
        _check_batch(len(changes))
        for change in changes:
            _check_change(change)
        await self._policy.app(caller, app_id)
        wanted = _last_wins(changes)

        def work(uow: UnitOfWork) -> list[int]:
            conversation = self._locked(uow, caller, app_id, conversation_id)
            users = [str(c.user_id) for c in wanted if c.user_id > 0]
            current = {
                p.user: p
                for p in uow.participants.get_many(conversation.id, users)
                if p.status is _NORMAL
            }
            failed: list[int] = []
            changed: list[Participant] = []
            for change in wanted:
                member = current.get(str(change.user_id))
                role = _role(change.role)
                is_owner = member is not None and member.user == conversation.owner
                if (
                    member is None
                    or (role is Role.OWNER and not is_owner)
                    or (role is not None and role is not Role.OWNER and is_owner)
                ):
                    failed.append(change.user_id)
                    continue
                if change.ext is not None:
                    merged = {**member.ext, **change.ext}
                    try:
                        rules.check_ext(merged)
                    except ConvhubError:
                        failed.append(change.user_id)
                        continue
                    member.ext = merged
                if role is not None:
                    member.role = role
                if change.nick_name is not None:
                    member.nick_name = change.nick_name
                if change.level is not None:
                    member.level = change.level
                if change.block_time is not None:
                    member.block_time = change.block_time
                member.operator = operator
                changed.append(member)
            uow.participants.update_many(
                changed, ("role", "nick_name", "level", "ext", "block_time", "operator")
            )
            return failed

        return await self._db.write(work, locks=conversation_id)

    async def batch_get(
        self, caller: Caller, app_id: int, conversation_id: int, user_ids: Sequence[int]
    ) -> list[Participant]:
        """Members in the order asked (those who left with status 1); strangers left out."""
        _check_batch(len(user_ids))
        await self._policy.app(caller, app_id)
        users = list(dict.fromkeys(str(u) for u in user_ids if u > 0))

        def work(uow: UnitOfWork) -> list[Participant]:
            Policy.visible(uow, caller, app_id, conversation_id)
            return uow.participants.get_many(conversation_id, users)

        by_user = {p.user: p for p in await self._db.read(work)}
        return [by_user[u] for u in users if u in by_user]

    async def scan(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        *,
        cursor: int,
        limit: int,
        reverse: bool = False,
        only_user_ids: bool = False,
        online: bool = False,
    ) -> MemberPage:
        """Current members in join order (newest first with ``reverse``), past ``cursor`` (the
        last one's join order; 0 starts). A live group lists its owner and admins; online
        members are not tracked, so ``online`` lists nobody."""
        if limit <= 0:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "Limit must be positive")
        limit = min(limit, MAX_SCAN_IDS if only_user_ids else MAX_SCAN)
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> list[Participant]:
            conversation = Policy.visible(uow, caller, app_id, conversation_id)
            if online or cursor < 0:
                return []
            start = cursor if cursor > 0 or not reverse else (1 << 63) - 1
            return uow.participants.page(
                conversation_id,
                cursor=start,
                descending=reverse,
                limit=limit + 1,
                staff_only=conversation.type is ConversationType.LIVE_GROUP,
            )

        found = await self._db.read(work)
        page, has_more = found[:limit], len(found) > limit
        return MemberPage(page, has_more, page[-1].join_seq if has_more else -1)

    async def count(self, caller: Caller, app_id: int, conversation_id: int) -> int:
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> int:
            return Policy.visible(uow, caller, app_id, conversation_id).member_count

        return await self._db.read(work)

    async def is_member(
        self, caller: Caller, app_id: int, conversation_id: int, user_id: int
    ) -> bool:
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> bool:
            Policy.visible(uow, caller, app_id, conversation_id)
            member = uow.participants.get(conversation_id, str(user_id)) if user_id > 0 else None
            return member is not None and member.status is _NORMAL

        return await self._db.read(work)
