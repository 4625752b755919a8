"""Who is a member now: the one check that sending, settings and owner transfers share."""

from __future__ import annotations

from convhub.domain.models import Participant, ParticipantStatus
from convhub.domain.ports import UnitOfWork
from convhub.errors import ConvhubError, ErrorCode


def current_member(
    uow: UnitOfWork, conversation_id: int, user: str, *, refusal: str | None = None
) -> Participant:
    """``user``'s membership of the conversation, if it has not left; otherwise
    PARTICIPANT_NOT_IN_CONVERSATION (with ``refusal`` as its message, when given)."""
    member = uow.participants.get(conversation_id, user)
    if member is None or member.status is not ParticipantStatus.NORMAL:
        raise ConvhubError(
            ErrorCode.PARTICIPANT_NOT_IN_CONVERSATION,
            refusal or f"user {user} is not a member of conversation {conversation_id}",
        )
    return member
