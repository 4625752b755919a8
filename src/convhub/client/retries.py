"""When to call again after ``FlowLimitExceeded``, and how long to wait first.

Only a refusal for rate (HTTP 429, ``FlowLimitExceeded``) is retried: the server refuses it before
doing anything, so calling again is safe for every action, writes included. Any other error, and
any failure to get an answer at all, is raised at once: whether a write happened is then unknown.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from convhub.client.errors import FLOW_LIMIT_EXCEEDED, ImError

__all__ = ["DEFAULT_RETRIES", "NO_RETRIES", "Retries", "is_rate_refusal", "parse_retry_after"]


@dataclass(frozen=True, slots=True)
class Retries:
    """``max_retries`` calls after the first (0 turns retrying off). The n-th wait is drawn
    from [d/2, d] with d = ``base_delay`` * 2**n capped at ``max_delay`` seconds, unless the
    answer says ``Retry-After``: then exactly that, or no retry if it asks for more than
    ``max_delay``."""

    max_retries: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < 0:
            raise ValueError(f"{self}: every setting must be zero or more")

    def delay(
        self,
        error: ImError,
        retry: int,
        retry_after: float | None,
        draw: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retry number ``retry`` (0 is the first), or None to raise."""
        if retry >= self.max_retries or not is_rate_refusal(error):
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_delay else None
        ceiling = min(self.max_delay, self.base_delay * 2.0**retry)
        # "Equal jitter": half the ceiling for sure, so that each retry waits longer than the
        # one before on average even at worst; the random half spreads clients that were
        # refused together.
        return ceiling / 2 + draw() * ceiling / 2


DEFAULT_RETRIES = Retries()
NO_RETRIES = Retries(max_retries=0)


def is_rate_refusal(error: ImError) -> bool:
    return error.status == 429 or error.code == FLOW_LIMIT_EXCEEDED


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or an HTTP date), None if absent or
    unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, by RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
