"""What a caller may do, decided in one place for both dialects.

An account's access key may act in any enabled app of its account, on any conversation there. A
token acts as one user, in one app, with its permissions, and sees only the conversations its user
created: to it, anybody else's conversation does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from convhub.domain.cache import TtlCache
from convhub.domain.caller import Caller
from convhub.domain.models import (
    App,
    Conversation,
    ConversationStatus,
    EntityStatus,
    ParticipantStatus,
)
from convhub.domain.permissions import Permission
from convhub.domain.ports import Database, Participants, UnitOfWork
from convhub.errors import ConvhubError, ErrorCode


def not_found(conversation_id: int) -> ConvhubError:
    return ConvhubError(
        ErrorCode.CONVERSATION_NOT_FOUND, f"conversation {conversation_id} does not exist"
    )


class Policy:
    def __init__(self, *, db: Database, clock: Callable[[], float], ttl: float = 5.0) -> None:
        self._db = db
        self._apps: TtlCache[int, App] = TtlCache(clock=clock, ttl=ttl)

    @staticmethod
    def require(caller: Caller, permission: Permission) -> None:
        if permission.value not in caller.permissions:
            raise ConvhubError(
                ErrorCode.PERMISSION_DENIED, f"the token lacks the {permission.value} permission"
            )

    async def app(self, caller: Caller, app_id: int) -> App:
        """The app, if the caller may act in it."""
        if caller.app_id is not None and caller.app_id != app_id:
            raise ConvhubError(
                ErrorCode.APP_OF_OTHER_ACCOUNT, f"the token does not act in app {app_id}"
            )
        app = await self._apps.get(
            app_id, lambda: self._db.read(lambda uow: uow.access.app(app_id))
        )
        if app is None:
            raise ConvhubError(ErrorCode.APP_NOT_FOUND, f"app {app_id} does not exist")
        if app.account_id != caller.account_id:
            raise ConvhubError(
                ErrorCode.APP_OF_OTHER_ACCOUNT, f"app {app_id} belongs to another account"
            )
        if app.status is not EntityStatus.ACTIVE:
            raise ConvhubError(ErrorCode.APP_DISABLED, f"app {app_id} is disabled")
        return app

    @staticmethod
    def user(caller: Caller) -> str:
        """The user a token acts as; operations that need one refuse an access key."""
        if caller.user is None:
            raise ConvhubError(ErrorCode.PERMISSION_DENIED, "this operation needs a user's token")
        return caller.user

    @staticmethod
    def sees(caller: Caller, app_id: int, conversation: Conversation) -> bool:
        """Whether ``conversation`` is a live one of the app that the caller may see."""
        return bool(Policy.seen(caller, app_id, (conversation,)))

    @staticmethod
    def seen(
        caller: Caller, app_id: int, conversations: Iterable[Conversation]
    ) -> dict[int, Conversation]:
        """Those of ``conversations`` that are live ones of the app the caller may see, by ID, in
        their order (one loop for a batch: a call per conversation was 4% of BatchGet(100))."""
        user, normal = caller.user, ConversationStatus.NORMAL
        return {
            c.id: c
            for c in conversations
            if c.app_id == app_id and c.status is normal and (user is None or c.creator == user)
        }

    @staticmethod
    def visible(
        uow: UnitOfWork,
        caller: Caller,
        app_id: int,
        conversation_id: int,
        *,
        lock: bool = False,
        members_too: bool = False,
    ) -> Conversation:
        """The conversation read in ``uow`` (``lock``: its row held until the unit ends), if the
        caller sees it; ``members_too``: a token's user may also be a current member (to read
        it and write messages), not only its creator."""
        found = uow.conversations.get(conversation_id, lock=lock)
        members = uow.participants if members_too else None
        return Policy.conversation(caller, app_id, conversation_id, found, members)

    @staticmethod
    def conversation(
        caller: Caller,
        app_id: int,
        conversation_id: int,
        found: Conversation | None,
        members: Participants | None = None,
    ) -> Conversation:
        """``found`` if the caller sees it; otherwise it does not exist. Given ``members``, a
        token also sees the conversations its user is a current member of (to read them and
        write messages; changing the conversation stays its creator's)."""
        if found is not None and Policy.sees(caller, app_id, found):
            return found
        if (
            found is not None
            and members is not None
            and caller.user is not None
            and found.app_id == app_id
            and found.status is ConversationStatus.NORMAL
        ):
            member = members.get(found.id, caller.user)
            if member is not None and member.status is ParticipantStatus.NORMAL:
                return found
        raise not_found(conversation_id)
