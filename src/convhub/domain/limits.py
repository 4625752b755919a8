"""The product's limits (volcengine-im.md §5.6): server settings, with the documented defaults."""

from __future__ import annotations

from dataclasses import dataclass

# The account-wide rate of messages sent through the API (§5.6: 50 a second), counted beside each
# sending action's own limit by the rate limiter under this name.
SEND_RATE = "MessageSendRate"
SEND_RATE_QPS = 50


@dataclass(frozen=True, slots=True)
class ProductLimits:
    max_group_members: int = 200  # ConversationParticipantsMoreThanLimit
    max_live_group_members: int = 10_000
    max_user_groups: int = 500  # groups one user is in: MoreThanUserConversationLimit
    max_live_groups_per_app: int = 200
    max_mark_types: int = 20  # per live group: ConversationMarkTypeMoreThanLimit
