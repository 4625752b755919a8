"""Settings, read from ``CONVHUB_*`` environment variables (the CLI sets them from its flags)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from convhub.dialects.coze.actions import ENDPOINTS
from convhub.dialects.volc.actions import ACTIONS
from convhub.domain.limits import SEND_RATE, SEND_RATE_QPS, ProductLimits
from convhub.errors import ConfigError
from convhub.ratelimit.limiter import REDIS_FAILURES, RedisFailure
from convhub.store.engine import DEFAULT_DATABASE_URL, mask_url, parse_database_url

__all__ = ["DEFAULT_RATE_LIMITS", "ConfigError", "Settings", "check_redis_url", "parse_rate_limits",
           "parse_redis_failure"]  # fmt: skip
N = TypeVar("N", int, float)

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


def _redis_failure(text: str) -> RedisFailure:
    try:
        return parse_redis_failure(text)
    except ValueError as error:
        raise ConfigError(f"CONVHUB_REDIS_FAILURE={text!r}: {error}") from None


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
    kept_conversations: int = 50_000
    kept_messages: int = 20_000
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
        """The settings the ``CONVHUB_*`` variables give; a ``ConfigError`` naming the first
        variable that is not usable. An empty variable counts as unset."""
        source: Mapping[str, str] = os.environ if env is None else env
        database_url = source.get("CONVHUB_DATABASE_URL") or DEFAULT_DATABASE_URL
        parse_database_url(database_url, source="CONVHUB_DATABASE_URL")
        rate_limits = source.get("CONVHUB_RATE_LIMITS", "")
        try:
            limits = parse_rate_limits(rate_limits)
        except ValueError as error:
            raise ConfigError(f"CONVHUB_RATE_LIMITS={rate_limits!r}: {error}") from None

        def number(name: str, kind: Callable[[str], N], default: N, least: N, what: str) -> N:
            return _number(source, "CONVHUB_" + name, kind, default, least, what)

        return cls(
            database_url=database_url,
            redis_url=check_redis_url(source.get("CONVHUB_REDIS_URL") or None),
            redis_failure=_redis_failure(source.get("CONVHUB_REDIS_FAILURE") or "open"),
            rate_limits=limits,
            max_body_bytes=number("MAX_BODY_BYTES", int, 1 << 20, 1, "bytes"),
            access_cache_seconds=number("ACCESS_CACHE_SECONDS", float, 5.0, 0.0, "seconds"),
            signature_window_seconds=number("SIGNATURE_WINDOW_SECONDS", int, 900, 1, "seconds"),
            pool_size=number("POOL_SIZE", int, 16, 1, "connections"),
            max_queued_writes=number("MAX_QUEUED_WRITES", int, 10_000, 1, "writes"),
            kept_conversations=number("KEPT_CONVERSATIONS", int, 50_000, 0, "conversations"),
            kept_messages=number("KEPT_MESSAGES", int, 20_000, 0, "messages"),
            max_group_members=number("MAX_GROUP_MEMBERS", int, 200, 1, "members"),
            max_live_group_members=number("MAX_LIVE_GROUP_MEMBERS", int, 10_000, 1, "members"),
            max_user_groups=number("MAX_USER_GROUPS", int, 500, 1, "groups"),
            max_live_groups_per_app=number("MAX_LIVE_GROUPS_PER_APP", int, 200, 1, "groups"),
        )


def check_redis_url(text: str | None, *, source: str = "CONVHUB_REDIS_URL") -> str | None:
    """``text`` if it is a URL the Redis client takes; a ``ConfigError`` naming ``source``."""
    if text is not None and not text.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"{source} {mask_url(text)!r} is not a Redis URL: use redis://HOST:6379/0 "
            "(or rediss://, unix://)"
        )
    return text


def _number(
    env: Mapping[str, str], name: str, kind: Callable[[str], N], default: N, least: N, what: str
) -> N:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or value < least:
        whole = "a whole number" if kind is int else "a number"
        raise ConfigError(
            f"{name}={text!r} is not usable: it takes {whole} of {what}, at least {least:n} "
            f"(unset it for the default, {default:n})"
        )
    return value
