"""Conversation rules: creation and its idempotency, partial modification, batch reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from convhub.domain import rules
from convhub.domain.access import AccessControl, Caller
from convhub.domain.commands import BatchGetConversations, CreateConversation, ModifyConversation
from convhub.domain.messages import build_message, validate_new_message
from convhub.domain.models import (
    Conversation,
    ConversationStatus,
    ConversationType,
    Participant,
    ParticipantStatus,
    Role,
)
from convhub.domain.ownership import get_own, token_scope
from convhub.domain.permissions import Permission, require
from convhub.domain.ports import Database, IdSource, Repository
from convhub.errors import ConvhubError, ErrorCode


@dataclass(frozen=True, slots=True)
class CreatedConversation:
    conversation: Conversation
    exist: bool


def idempotency_key(command: CreateConversation) -> str | None:
    """The key that makes a create a repeat of an earlier one, if any.

    A given IdempotentId wins. A single chat without one is keyed by its two users in either
    order, so a pair of users gets one single chat. A group without one gets no key: it always
    creates (the NULL key is the "fresh random key" of the Volcengine page, without the random
    index page it would dirty). The two namespaces are kept apart by their prefixes.
    """
    if command.idempotent_id:
        return "id:" + command.idempotent_id
    if command.type == ConversationType.SINGLE and command.owner and command.other:
        low, high = sorted((command.owner, command.other))
        return f"pair:{len(low)}:{low}:{high}"
    return None


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
        self, *, db: Database, ids: IdSource, clock: Callable[[], float], access: AccessControl
    ) -> None:
        self._db = db
        self._ids = ids
        self._clock = clock
        self._access = access

    async def create_conversation(
        self, command: CreateConversation, *, caller: Caller | None = None
    ) -> CreatedConversation:
        if caller is not None:
            require(caller.permissions, Permission.CREATE_CONVERSATION)
        kind = _validate_create(command)
        await self._access.authorize_app(command.account_id, command.app_id)
        key = idempotency_key(command)
        now = int(self._clock())
        owner = command.owner
        assert owner is not None  # checked by _validate_create
        other = command.other if kind is ConversationType.SINGLE else None
        ids = self._ids

        def work(repo: Repository) -> CreatedConversation:
            conversation = Conversation(
                id=ids.next_id(),
                app_id=command.app_id,
                inbox_type=command.inbox_type,
                type=kind,
                owner=owner,
                creator=owner,
                other=other,
                create_time=now,
                modify_time=now,
                name=command.name or "",
                avatar_url=command.avatar_url or "",
                description=command.description or "",
                notice=command.notice or "",
                ext={**(command.ext or {}), **(command.meta_data or {})},
                member_count=2 if other is not None else 1,
                bot_id=command.bot_id or "",
                connector_id=command.connector_id or "",
                section_id=ids.next_id(),
            )
            if not repo.insert_conversation(conversation, key):
                assert key is not None  # only a keyed insert can collide
                existing = repo.find_by_idempotency_key(command.app_id, command.inbox_type, key)
                if existing is None:  # the holder vanished between the two statements
                    raise ConvhubError(ErrorCode.INTERNAL, "idempotency key conflict")
                return CreatedConversation(existing, exist=True)
            if other is not None:
                members = [
                    Participant(conversation.id, owner, Role.MEMBER, owner, now),
                    Participant(conversation.id, other, Role.MEMBER, owner, now),
                ]
            else:
                members = [Participant(conversation.id, owner, Role.OWNER, owner, now)]
            repo.insert_participants(members)
            if command.messages:
                repo.insert_messages(
                    [
                        build_message(ids.next_id(), conversation, owner, m, now)
                        for m in command.messages
                    ]
                )
            return CreatedConversation(conversation, exist=False)

        return await self._db.write(work)

    async def modify_conversation(self, command: ModifyConversation) -> None:
        _validate_core_info(
            command.name, command.avatar_url, command.description, command.notice, command.ext
        )
        await self._access.authorize_app(command.account_id, command.app_id)
        now = int(self._clock())

        def work(repo: Repository) -> None:
            conversation = _get_live(repo, command.app_id, command.conversation_id)
            changed = False
            for field in ("name", "avatar_url", "description", "notice"):
                value = getattr(command, field)
                if value is not None and value != getattr(conversation, field):
                    setattr(conversation, field, value)
                    changed = True
            if command.ext is not None:
                merged = {**conversation.ext, **command.ext}
                rules.check_ext(merged)
                if merged != conversation.ext:
                    conversation.ext = merged
                    changed = True
            if command.owner is not None and command.owner != conversation.owner:
                _transfer_owner(repo, conversation, command.owner)
                changed = True
            if changed:
                conversation.modify_time = max(now, conversation.modify_time)
                repo.update_conversation(conversation)

        await self._db.write(work)

    async def batch_get_conversations(self, command: BatchGetConversations) -> list[Conversation]:
        ids = command.conversation_ids
        if not ids:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "ConversationShortId must not be empty")
        if len(ids) > rules.MAX_BATCH_GET:
            raise ConvhubError(
                ErrorCode.INVALID_PARAM,
                f"ConversationShortId may hold at most {rules.MAX_BATCH_GET} IDs",
            )
        if any(i <= 0 for i in ids):
            raise ConvhubError(
                ErrorCode.INVALID_CONVERSATION_ID_ELEMENT,
                "ConversationShortId holds an ID that is not positive",
            )
        await self._access.authorize_app(command.account_id, command.app_id)
        unique = list(dict.fromkeys(ids))

        def work(repo: Repository) -> list[Conversation]:
            return repo.get_conversations(command.app_id, unique)

        found = {
            c.id: c for c in await self._db.read(work) if c.status is ConversationStatus.NORMAL
        }
        return [found[i] for i in unique if i in found]

    # Coze-style operations: a token's user sees only the conversations it created, in its app.

    async def get_conversation(self, caller: Caller, conversation_id: int) -> Conversation:
        require(caller.permissions, Permission.RETRIEVE_CONVERSATION)

        def work(repo: Repository) -> Conversation:
            return get_own(repo, caller, conversation_id)

        return await self._db.read(work)

    async def list_conversations(
        self,
        caller: Caller,
        *,
        bot_id: str,
        page_num: int,
        page_size: int,
        descending: bool = True,
        connector_id: str = "1024",
    ) -> tuple[list[Conversation], bool]:
        require(caller.permissions, Permission.LIST_CONVERSATION)
        if page_num < 1:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "page_num must be at least 1")
        if not 1 <= page_size <= rules.MAX_PAGE_SIZE:
            raise ConvhubError(
                ErrorCode.INVALID_PARAM, f"page_size must be 1 to {rules.MAX_PAGE_SIZE}"
            )
        app_id, user = token_scope(caller)

        def work(repo: Repository) -> list[Conversation]:
            return repo.list_conversations(
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

    async def rename_conversation(
        self, caller: Caller, conversation_id: int, name: str | None
    ) -> Conversation:
        require(caller.permissions, Permission.EDIT_CONVERSATION)
        rules.check_length(name, rules.MAX_NAME, "name")
        now = int(self._clock())

        def work(repo: Repository) -> Conversation:
            conversation = get_own(repo, caller, conversation_id)
            if name is not None and name != conversation.name:
                conversation.name = name
                conversation.modify_time = max(now, conversation.modify_time)
                repo.update_conversation(conversation)
            return conversation

        return await self._db.write(work)

    async def delete_conversation(self, caller: Caller, conversation_id: int) -> None:
        """Dissolves it: gone for both dialects; its messages stay in the store."""
        require(caller.permissions, Permission.EDIT_CONVERSATION)
        now = int(self._clock())

        def work(repo: Repository) -> None:
            conversation = get_own(repo, caller, conversation_id)
            conversation.status = ConversationStatus.DISSOLVED
            conversation.modify_time = max(now, conversation.modify_time)
            repo.update_conversation(conversation)

        await self._db.write(work)

    async def clear_conversation(self, caller: Caller, conversation_id: int) -> int:
        """Starts a new context section; earlier messages are kept. Returns the section's ID."""
        require(caller.permissions, Permission.EDIT_CONVERSATION)
        ids = self._ids

        def work(repo: Repository) -> int:
            conversation = get_own(repo, caller, conversation_id)
            conversation.section_id = ids.next_id()
            repo.update_conversation(conversation)
            return conversation.section_id

        return await self._db.write(work)


def _get_live(repo: Repository, app_id: int, conversation_id: int) -> Conversation:
    conversation = repo.get_conversation(app_id, conversation_id)
    if conversation is None or conversation.status is not ConversationStatus.NORMAL:
        raise ConvhubError(
            ErrorCode.CONVERSATION_NOT_FOUND, f"conversation {conversation_id} does not exist"
        )
    return conversation


def _transfer_owner(repo: Repository, conversation: Conversation, new_owner: str) -> None:
    if conversation.type is ConversationType.SINGLE:
        raise ConvhubError(
            ErrorCode.SINGLE_CONVERSATION_NOT_SUPPORTED, "a single chat has no owner to transfer"
        )
    member = repo.get_participant(conversation.id, new_owner)
    if member is None or member.status is not ParticipantStatus.NORMAL:
        raise ConvhubError(
            ErrorCode.PARTICIPANT_NOT_IN_CONVERSATION,
            "the new owner must be a member of the conversation",
        )
    repo.set_participant_role(conversation.id, conversation.owner, Role.MEMBER)
    repo.set_participant_role(conversation.id, new_owner, Role.OWNER)
    conversation.owner = new_owner
