"""Each member's own settings of a conversation (mute, pin, favourite, ext, read index), and the
mark types of live groups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from convhub.domain import rules
from convhub.domain.caller import Caller
from convhub.domain.limits import ProductLimits
from convhub.domain.members import current_member
from convhub.domain.models import (
    Conversation,
    ConversationSetting,
    ConversationType,
)
from convhub.domain.policy import Policy
from convhub.domain.ports import Database, UnitOfWork
from convhub.errors import ConvhubError, ErrorCode

MAX_MARK_TYPE = 128
ADD_MARKS, DELETE_MARKS = 1, 2


@dataclass(frozen=True, slots=True)
class SettingChange:
    """``stick_top_time`` and ``favorite_time`` apply only when their flag is set (the
    documented meaning of IsStickTop and IsSetFavorite in a request); None leaves a field."""

    is_mute: bool | None = None
    set_stick_top: bool = False
    stick_top_time: int = 0
    set_favorite: bool = False
    favorite_time: int = 0
    ext: dict[str, str] | None = None


class SettingService:
    def __init__(
        self, *, db: Database, policy: Policy, limits: ProductLimits | None = None
    ) -> None:
        self._db = db
        self._policy = policy
        self._limits = limits or ProductLimits()

    async def modify_setting(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        user: str | None,
        change: SettingChange,
    ) -> None:
        if user is None:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "ParticipantUserId is required")
        rules.check_ext(change.ext)
        for time in (change.stick_top_time, change.favorite_time):
            if time < 0:
                raise ConvhubError(ErrorCode.INVALID_PARAM, "times must not be negative")
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> None:
            Policy.visible(uow, caller, app_id, conversation_id)
            current_member(uow, conversation_id, user)
            setting = uow.settings.get(conversation_id, user)
            setting = setting or ConversationSetting(conversation_id, user)
            if change.is_mute is not None:
                setting.is_mute = change.is_mute
            if change.set_stick_top:
                setting.stick_top_time = change.stick_top_time
            if change.set_favorite:
                setting.favorite_time = change.favorite_time
            if change.ext is not None:
                merged = {**setting.ext, **change.ext}
                rules.check_ext(merged)
                setting.ext = merged
            uow.settings.save(setting)

        await self._db.write(work)

    async def get_setting(
        self, caller: Caller, app_id: int, conversation_id: int, user: str | None
    ) -> tuple[Conversation, ConversationSetting]:
        """A member's settings (defaults until changed), also after it left; a user who never
        was a member has none."""
        if user is None:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "ParticipantUserId is required")
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> tuple[Conversation, ConversationSetting]:
            conversation = Policy.visible(uow, caller, app_id, conversation_id)
            if uow.participants.get(conversation_id, user) is None:
                raise ConvhubError(
                    ErrorCode.SETTING_NOT_FOUND,
                    f"user {user} has no settings in conversation {conversation_id}",
                )
            setting = uow.settings.get(conversation_id, user)
            return conversation, setting or ConversationSetting(conversation_id, user)

        return await self._db.read(work)

    async def mark_conversation(
        self,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        marks: Sequence[str],
        action: int = ADD_MARKS,
    ) -> None:
        if action not in (ADD_MARKS, DELETE_MARKS):
            raise ConvhubError(ErrorCode.INVALID_PARAM, "MarkAction must be 1 (add) or 2 (delete)")
        wanted = list(dict.fromkeys(marks))
        if not wanted:
            raise ConvhubError(ErrorCode.INVALID_PARAM, "MarkTypes must not be empty")
        for mark in wanted:
            if not mark:
                raise ConvhubError(ErrorCode.INVALID_PARAM, "a mark type must not be empty")
            rules.check_length(mark, MAX_MARK_TYPE, "MarkTypes")
        await self._policy.app(caller, app_id)
        cap = self._limits.max_mark_types

        def work(uow: UnitOfWork) -> None:
            conversation = self._live(uow, caller, app_id, conversation_id, lock=True)
            held = set(uow.conversations.marks(conversation.id))
            if action == DELETE_MARKS:
                uow.conversations.delete_marks(conversation.id, [m for m in wanted if m in held])
                return
            new = [m for m in wanted if m not in held]
            if len(held) + len(new) > cap:
                raise ConvhubError(
                    ErrorCode.TOO_MANY_MARK_TYPES, f"a live group holds at most {cap} mark types"
                )
            uow.conversations.add_marks(conversation.id, new)

        await self._db.write(work, locks=conversation_id)

    async def get_marks(self, caller: Caller, app_id: int, conversation_id: int) -> list[str]:
        await self._policy.app(caller, app_id)

        def work(uow: UnitOfWork) -> list[str]:
            conversation = self._live(uow, caller, app_id, conversation_id)
            return uow.conversations.marks(conversation.id)

        return await self._db.read(work)

    @staticmethod
    def _live(
        uow: UnitOfWork, caller: Caller, app_id: int, conversation_id: int, *, lock: bool = False
    ) -> Conversation:
        conversation = Policy.visible(uow, caller, app_id, conversation_id, lock=lock)
        if conversation.type is not ConversationType.LIVE_GROUP:
            raise ConvhubError(ErrorCode.ONLY_LIVE_GROUP, "only a live group has mark types")
        return conversation
