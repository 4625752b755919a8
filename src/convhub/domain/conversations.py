"""Conversation rules: creation and its idempotency, modification, reads, dissolution."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from convhub.domain import rules
from convhub.domain.caller import Caller
from convhub.domain.commands import CreateConversation, ModifyConversation
from convhub.domain.limits import ProductLimits
from convhub.domain.members import current_member
from convhub.domain.messages import build_message, validate_new_message
from convhub.domain.models import (
    Conversation,
    ConversationType,
    Participant,
    Role,
)
from convhub.domain.policy import Policy
from convhub.domain.ports import Database, IdSource, UnitOfWork, UserOrder
from convhub.errors import ConvhubError, ErrorCode

_KEYED_INSERT_ATTEMPTS = 3
MAX_USER_PAGE = 20  # GetUserConversations' documented cap
_NO_CURSOR = (1 << 63) - 1  # "from the start" for the orders that walk downwards


@dataclass(frozen=True, slots=True)
class CreatedConversation:
    conversation: Conversation
    exist: bool


@dataclass(frozen=True, slots=True)
class ConversationPage:
    conversations: list[Conversation]
    has_more: bool
    next_cursor: int  # -1 when nothing is left


def idempotency_key(command: CreateConversation) -> str | None:
    """The key that makes a create a repeat of an earlier one, if any.

    A given IdempotentId wins. A single chat without one is keyed by its two users in either
    order, so a pair of users gets one single chat. A group without one gets no key: it always
    creates (the NULL key is the "fresh random key" of the Volcengine page, without the random
    index page it would dirty). The two namespaces are kept apart by their prefixes. A dissolved
    conversation gives its key up (``Conversations.dissolve``): the next create makes a new one.
    """
    if command.idempotent_id:
        return "id:" + command.idempotent_id
    if command.type == ConversationType.SINGLE and command.owner and command.other:
        low, high = sorted((command.owner, command.other))
        return f"pair:{len(low)}:{low}:{high}"
    return None


def user_groups_lock(app_id: int, user: str) -> str:
    """The lock under which a user's groups are counted and joined."""
    return f"user-groups:{app_id}:{user}"


def counts_toward_group_limit(conversation: Conversation) -> bool:
    """Volcengine's limit of groups per user (§5.6) is about groups; a Coze conversation, kept
    as a group on a connector, is a user's chat with a bot and does not count."""
    return conversation.type is ConversationType.GROUP and not conversation.connector_id


def _validate_create(command: CreateConversation) -> ConversationType:
    try:
        kind = ConversationType(command.type)
    except ValueError:
        raise ConvhubError(
            ErrorCode.INVALID_PARAM, "ConversationType must be 1 (single), 2 (group) or 100 (live)"
        ) from None
    if command.owner is None:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "OwnerUserId is required")
    if kind is ConversationType.SINGLE:
        if command.other is None:
            raise ConvhubError(ErrorCode.SINGLE_NEEDS_OTHER_USER, "a single chat needs OtherUserId")
        if command.other == command.owner:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "OtherUserId must differ from OwnerUserId")
    if command.inbox_type < 0:
        raise ConvhubError(ErrorCode.INVALID_PARAM, "InboxType must not be negative")
    rules.check_length(command.idempotent_id, rules.MAX_IDEMPOTENT_ID, "IdempotentId")
    _validate_core_info(
        command.name, command.avatar_url, command.description, command.notice, command.ext
    )
    rules.check_meta_data(command.meta_data)
    rules.check_length(command.bot_id, rules.MAX_ID_TEXT, "bot_id")
    rules.check_length(command.connector_id, rules.MAX_ID_TEXT, "connector_id")
    for message in command.messages:
        validate_new_message(message)
    return kind


def _validate_core_info(
    name: str | None,
    avatar_url: str | None,
    description: str | None,
    notice: str | None,
    ext: dict[str, str] | None,
) -> None:
    rules.check_length(name, rules.MAX_NAME, "Name")
    rules.check_length(avatar_url, rules.MAX_AVATAR_URL, "AvatarUrl")
    rules.check_length(description, rules.MAX_DESCRIPTION, "Description")
    rules.check_length(notice, rules.MAX_NOTICE, "Notice")
    rules.check_ext(ext)


class ConversationService:
    def __init__(
        self,
        *,
        db: Database,
        ids: IdSource,
        clock: Callable[[], float],
        policy: Policy,
        limits: ProductLimits | None = None,
    ) -> None:
        self._db = db
        self._ids = ids
        self._clock = clock
        self._policy = policy
        self._limits = limits or ProductLimits()

    async def create_conversation(
        self, caller: Caller, command: CreateConversation
    ) -> CreatedConversation:
        kind = _validate_create(command)
        await self._policy.app(caller, command.app_id)
        key = idempotency_key(command)
        now = self._clock()
        seconds = int(now)
        owner = command.owner
        assert owner is not None  # checked by _validate_create
        other = command.other if kind is ConversationType.SINGLE else None
        ids = self._ids
        limits = self._limits

        def room_for_one_more_group(groups: int) -> None:
            if groups >= limits.max_user_groups:
                raise ConvhubError(
                    ErrorCode.TOO_MANY_USER_CONVERSATIONS,
                    f"user {owner} is in {limits.max_user_groups} groups already",
                )

        # What counts_toward_group_limit will say of the conversation made. Each limit is
        # counted under a lock of its own, so that creates in several processes take turns
        # rather than each seeing room for one more.
        counted_group = kind is ConversationType.GROUP and not command.connector_id
        lock_names: tuple[str, ...] = ()
        if counted_group:
            lock_names = (user_groups_lock(command.app_id, owner),)
        elif kind is ConversationType.LIVE_GROUP:
            lock_names = (f"live-groups:{command.app_id}",)

        def check_limits(uow: UnitOfWork) -> None:
            uow.lock(*lock_names)
            if counted_group:
                uow.participants.check_groups(command.app_id, owner, room_for_one_more_group)
            elif kind is ConversationType.LIVE_GROUP:
                live_groups = uow.conversations.count_live_groups(command.app_id)
                if live_groups >= limits.max_live_groups_per_app:
                    raise ConvhubError(
                        ErrorCode.INVALID_PARAM,
                        f"an app may have {limits.max_live_groups_per_app} live groups",
                    )

        def work(uow: UnitOfWork) -> CreatedConversation:
            if key is None:  # before writing, so that a refusal costs the batch nothing
                check_limits(uow)
            conversation = Conversation(
                id=ids.next_id(),
                app_id=command.app_id,
                inbox_type=command.inbox_type,
                type=kind,
                owner=owner,
                creator=owner,
                other=other,
                create_time=seconds,
                modify_time=seconds,
                name=command.name or "",
                avatar_url=command.avatar_url or "",
                description=command.description or "",
                notice=command.notice or "",
                ext={**(command.ext or {}), **(command.meta_data or {})},
                member_count=2 if other is not None else 1,
                bot_id=command.bot_id or "",
                connector_id=command.connector_id or "",
                section_id=ids.next_id(),
                last_message_index=len(command.messages),
                last_join_seq=2 if other is not None else 1,
            )
            conversation.activity_key = conversation.id
            for _ in range(_KEYED_INSERT_ATTEMPTS):
                if uow.conversations.add(conversation, key):
                    break
                assert key is not None  # only a keyed insert can collide
                existing = uow.conversations.find_by_key(command.app_id, command.inbox_type, key)
                if existing is not None:
                    return CreatedConversation(existing, exist=True)
                # The holder was dissolved between the two statements: its key is free again.
            else:
                raise ConvhubError(ErrorCode.UNAVAILABLE, "idempotency key contended; retry")
            if key is not None:
                check_limits(uow)
            first = [(owner, Role.MEMBER if other is not None else Role.OWNER)]
            if other is not None:
                first.append((other, Role.MEMBER))
            uow.participants.add_many(
                [
                    Participant(
                        conversation.id,
                        user,
                        role,
                        owner,
                        seconds,
                        app_id=command.app_id,
                        in_group_limit=counts_toward_group_limit(conversation),
                        join_seq=seq,
                    )
                    for seq, (user, role) in enumerate(first, start=1)
                ]
            )
            if command.messages:
                millis = int(now * 1000)
                uow.messages.add_many(
                    [
                        build_message(ids.next_id(), index, conversation, owner, m, millis)
                        for index, m in enumerate(command.messages, start=1)
                    ]
                )
            return CreatedConversation(conversation, exist=False)

        return await self._db.write(work, lock_names=lock_names)

    async def modify_conversation(
        self, caller: Caller, command: ModifyConversation
    ) -> Conversation:
        """Changes what is given; ``ModifyTime`` moves only when something changed."""
        _validate_core_info(
            command.name, command.avatar_url, command.description, command.notice, command.ext
        )
        await self._policy.app(caller, command.app_id)
        now = int(self._clock())

        def work(uow: UnitOfWork) -> Conversation:
            conversation = Policy.visible(
                uow, caller, command.app_id, command.conversation_id, lock=True
            )
            changed: list[str] = []
            for field in ("name", "avatar_url", "description", "notice"):
                value = getattr(command, field)
                if value is not None and value != getattr(conversation, field):
                    setattr(conversation, field, value)
                    changed.append(field)
            if command.ext is not None:
                merged = {**conversation.ext, **command.ext}
                rules.check_ext(merged)
                if merged != conversation.ext:
                    conversation.ext = merged
                    changed.append("ext")
            if command.owner is not None and command.owner != conversation.owner:
                _transfer_owner(uow, conversation, command.owner)
                changed.append("owner")
            if changed:
                conversation.modify_time = max(now, conversation.modify_time)
                uow.conversations.update(conversation, (*changed, "modify_time"))
            return conversation

        return await self._db.write(work, locks=command.conversation_id)

    async def batch_get_conversations(
        self, caller: Caller, app_id: int, conversation_ids: tuple[int, ...]
    ) -> list[Conversation]:
        ids = conversation_ids
        if not ids:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "ConversationShortId must not be empty")
        if len(ids) > rules.MAX_BATCH_GET:
            raise ConvhubError(
                ErrorCode.INVALID_PARAM,
                f"ConversationShortId may hold at most {rules.MAX_BATCH_GET} IDs",
            )
        if min(ids) <= 0:
            raise ConvhubError(
                ErrorCode.INVALID_CONVERSATION_ID_ELEMENT,
                "ConversationShortId holds an ID that is not positive",
            )
        await self._policy.app(caller, app_id)
        unique = list(dict.fromkeys(ids))
        read = await self._db.read(lambda uow: uow.conversations.get_many(unique))
        found = Policy.seen(caller, app_id, read)
        # In the order asked (``get_many`` keeps none); a conversation is never falsy.
        return list(filter(None, map(found.get, unique)))

    async def get_conversation(
        self, caller: Caller, app_id: int, conversation_id: int
    ) -> Conversation:
        await self._policy.app(caller, app_id)
        return await self._db.read(lambda uow: Policy.visible(uow, caller, app_id, conversation_id))

    async def list_conversations(
        self,
        caller: Caller,
        app_id: int,
        *,
        bot_id: str,
        page_num: int,
        page_size: int,
        descending: bool = True,
        connector_id: str = "1024",
    ) -> tuple[list[Conversation], bool]:
        """The caller's own conversations with a bot, a page at a time."""
        rules.check_text(bot_id, "bot_id")
        rules.check_text(connector_id, "connector_id")
        if page_num < 1:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "page_num must be at least 1")
        if not 1 <= page_size <= rules.MAX_PAGE_SIZE:
            raise ConvhubError(
                ErrorCode.INVALID_PARAM, f"page_size must be 1 to {rules.MAX_PAGE_SIZE}"
            )
        user = Policy.user(caller)
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> list[Conversation]:
            return uow.conversations.list_created(
                app_id,
                user,
                bot_id=bot_id,
                connector_id=connector_id,
                offset=(page_num - 1) * page_size,
                limit=page_size + 1,
                descending=descending,
            )

        found = await self._db.read(work)
        return found[:page_size], len(found) > page_size

    async def destroy_conversation(
        self, caller: Caller, app_id: int, conversation_id: int, *, owner: str
    ) -> None:
        """Dissolves it, for both dialects: it stays stored with status 1, its messages with it,
        and its idempotency key is free for a new conversation."""
        await self._policy.app(caller, app_id)
        now = int(self._clock())

        def work(uow: UnitOfWork) -> None:
            conversation = Policy.visible(uow, caller, app_id, conversation_id)
            if conversation.type is ConversationType.SINGLE:
                raise ConvhubError(
                    ErrorCode.SINGLE_CONVERSATION_NOT_SUPPORTED, "a single chat cannot be dissolved"
                )
            if conversation.owner != owner:
                raise ConvhubError(ErrorCode.ONLY_OWNER, "only the owner can dissolve it")
            conversation.modify_time = max(now, conversation.modify_time)
            uow.conversations.dissolve(conversation)
            if counts_toward_group_limit(conversation):
                uow.participants.leave_group_limit(conversation.id)

        await self._db.write(work)

    async def clear_conversation(self, caller: Caller, app_id: int, conversation_id: int) -> int:
        """Starts a new context section; earlier messages are kept. Returns the section's ID."""
        await self._policy.app(caller, app_id)
        ids = self._ids

        def work(uow: UnitOfWork) -> int:
            conversation = Policy.visible(uow, caller, app_id, conversation_id)
            conversation.section_id = ids.next_id()
            uow.conversations.update(conversation, ("section_id",))
            return conversation.section_id

        return await self._db.write(work)

    async def user_conversations(
        self,
        caller: Caller,
        app_id: int,
        user: str | None,
        *,
        order: UserOrder,
        cursor: int,
        limit: int,
        inbox_type: int = 0,
    ) -> ConversationPage:
        """A page of the live conversations ``user`` is a current member of. The cursor is the
        last item's position in ``order`` (unique, so a walk visits each conversation once);
        0 starts, and a page with nothing after it answers -1."""
        if user is None:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "ParticipantUserId is required")
        if limit <= 0:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "Limit must be positive")
        limit = min(limit, MAX_USER_PAGE)
        await self._policy.app(caller, app_id)
        if cursor < 0:
            return ConversationPage([], has_more=False, next_cursor=-1)
        if cursor == 0 and order is not UserOrder.CREATED:
            cursor = _NO_CURSOR

        def work(uow: UnitOfWork) -> list[Conversation]:
            return uow.conversations.of_user(
                app_id, user, inbox_type=inbox_type, order=order, cursor=cursor, limit=limit + 1
            )

        found = list(Policy.seen(caller, app_id, await self._db.read(work)).values())
        page, has_more = found[:limit], len(found) > limit
        if not has_more:
            return ConversationPage(page, has_more=False, next_cursor=-1)
        last = page[-1]
        return ConversationPage(
            page,
            has_more=True,
            next_cursor=last.activity_key if order is UserOrder.ACTIVITY else last.id,
        )


def _transfer_owner(uow: UnitOfWork, conversation: Conversation, new_owner: str) -> None:
    if conversation.type is ConversationType.SINGLE:
        raise ConvhubError(
            ErrorCode.SINGLE_CONVERSATION_NOT_SUPPORTED, "a single chat has no owner to transfer"
        )
    member = current_member(
        uow, conversation.id, new_owner,
        refusal="the new owner must be a member of the conversation",
    )  # fmt: skip
    old = uow.participants.get(conversation.id, conversation.owner)
    if old is not None:
        old.role = Role.MEMBER
        uow.participants.update(old, ("role",))
    member.role = Role.OWNER
    uow.participants.update(member, ("role",))
    conversation.owner = new_owner
