"""The core's services, as the dialects reach them."""

from __future__ import annotations

from dataclasses import dataclass

from convhub.domain.conversations import ConversationService
from convhub.domain.messages import MessageService
from convhub.domain.participants import ParticipantService
from convhub.domain.policy import Policy
from convhub.domain.settings import SettingService


@dataclass(frozen=True, slots=True)
class Services:
    policy: Policy
    conversations: ConversationService
    messages: MessageService
    participants: ParticipantService
    settings: SettingService
