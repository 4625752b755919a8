"""Who may see what: a token's user sees only the conversations it created, in its own app."""

from __future__ import annotations

from convhub.domain.access import Caller
from convhub.domain.models import Conversation, ConversationStatus
from convhub.domain.ports import Repository
from convhub.errors import ConvhubError, ErrorCode


def token_scope(caller: Caller) -> tuple[int, str]:
    if caller.app_id is None or caller.user is None:
        raise ConvhubError(ErrorCode.PERMISSION_DENIED, "this operation needs a user's token")
    return caller.app_id, caller.user


def get_own(repo: Repository, caller: Caller, conversation_id: int) -> Conversation:
    """The caller's own live conversation; anybody else's does not exist for it."""
    app_id, user = token_scope(caller)
    conversation = repo.get_conversation(app_id, conversation_id)
    if (
        conversation is None
        or conversation.status is not ConversationStatus.NORMAL
        or conversation.creator != user
    ):
        raise ConvhubError(
            ErrorCode.CONVERSATION_NOT_FOUND, f"conversation {conversation_id} does not exist"
        )
    return conversation
