"""Settings, read from ``CONVHUB_*`` environment variables (the CLI sets them from its flags)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from convhub.dialects.coze.actions import ENDPOINTS
from convhub.dialects.volc.actions import ACTIONS
from convhub.domain.limits import SEND_RATE, SEND_RATE_QPS, ProductLimits
from convhub.ratelimit.limiter import REDIS_FAILURES, RedisFailure
from convhub.store.engine import DEFAULT_DATABASE_URL

# Every operation of both dialects has a limit, from its one declaration: the Volcengine pages'
# QPS, and convhub's for Coze (which publishes none). The limiter refuses an operation it has
# no limit for, so no action can run unlimited.
DEFAULT_RATE_LIMITS: Mapping[str, int] = {
    **{action.name: action.qps for action in ACTIONS.values()},
    **{"coze:" + endpoint.operation: endpoint.qps for endpoint in ENDPOINTS},
    SEND_RATE: SEND_RATE_QPS,
}


def parse_rate_limits(
    text: str, defaults: Mapping[str, int] = DEFAULT_RATE_LIMITS
) -> dict[str, int]:
    """``"CreateConversation=50,*=1000"``: per-operation requests per second. ``*`` sets every
    operation and is applied first, so named entries override it wherever they stand."""
    entries: list[tuple[str, int]] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value.isdigit() or int(value) <= 0:
            raise ValueError(f"bad rate limit {part!r}: expected Operation=positive-integer")
        if name != "*" and name not in defaults:
            known = ", ".join(sorted(defaults))
            raise ValueError(f"unknown operation {name!r} in rate limits (known: {known})")
        entries.append((name, int(value)))
    limits = dict(defaults)
    for operation, qps in sorted(entries, key=lambda entry: entry[0] != "*"):
        if operation == "*":
            limits = dict.fromkeys(limits, qps)
        else:
            limits[operation] = qps
    return limits


def parse_redis_failure(text: str) -> RedisFailure:
    for mode in REDIS_FAILURES:
        if text.strip().lower() == mode:
            return mode
    raise ValueError(f"bad Redis failure mode {text!r}: expected open or closed")


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    # Redis unreachable: "open" counts limits in each process meanwhile, "closed" refuses (503).
    redis_failure: RedisFailure = "open"
    rate_limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    max_body_bytes: int = 1 << 20
    access_cache_seconds: float = 5.0
    signature_window_seconds: int = 900
    regions: frozenset[str] = frozenset({"cn-north-1", "ap-southeast-1"})
    pool_size: int = 16
    max_queued_writes: int = 10_000
    max_group_members: int = 200
    max_live_group_members: int = 10_000
    max_user_groups: int = 500
    max_live_groups_per_app: int = 200

    @property
    def product_limits(self) -> ProductLimits:
        return ProductLimits(
            max_group_members=self.max_group_members,
            max_live_group_members=self.max_live_group_members,
            max_user_groups=self.max_user_groups,
            max_live_groups_per_app=self.max_live_groups_per_app,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("CONVHUB_DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=env.get("CONVHUB_REDIS_URL") or None,
            redis_failure=parse_redis_failure(env.get("CONVHUB_REDIS_FAILURE") or "open"),
            rate_limits=parse_rate_limits(env.get("CONVHUB_RATE_LIMITS", "")),
            max_body_bytes=int(env.get("CONVHUB_MAX_BODY_BYTES", 1 << 20)),
            access_cache_seconds=float(env.get("CONVHUB_ACCESS_CACHE_SECONDS", 5.0)),
            signature_window_seconds=int(env.get("CONVHUB_SIGNATURE_WINDOW_SECONDS", 900)),
            pool_size=int(env.get("CONVHUB_POOL_SIZE", 16)),
            max_queued_writes=int(env.get("CONVHUB_MAX_QUEUED_WRITES", 10_000)),
            max_group_members=int(env.get("CONVHUB_MAX_GROUP_MEMBERS", 200)),
            max_live_group_members=int(env.get("CONVHUB_MAX_LIVE_GROUP_MEMBERS", 10_000)),
            max_user_groups=int(env.get("CONVHUB_MAX_USER_GROUPS", 500)),
            max_live_groups_per_app=int(env.get("CONVHUB_MAX_LIVE_GROUPS_PER_APP", 200)),
        )
