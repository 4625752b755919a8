"""Settings: the rate-limit syntax ``Operation=N,*=N`` and the environment."""

from __future__ import annotations

import pytest

from convhub.config import DEFAULT_RATE_LIMITS, Settings, parse_rate_limits
from convhub.dialects.coze.actions import ENDPOINTS
from convhub.dialects.volc.actions import ACTIONS
from convhub.domain.limits import SEND_RATE

CREATE, MODIFY, BATCH_GET = "CreateConversation", "ModifyConversation", "BatchGetConversations"
VOLC = (CREATE, MODIFY, BATCH_GET)


def volc(limits: dict[str, int]) -> dict[str, int]:
    """The Volcengine part of a limits table."""
    return {name: limits[name] for name in VOLC}


def test_empty_text_gives_the_defaults_as_a_fresh_dict() -> None:
    limits = parse_rate_limits("")
    assert limits == DEFAULT_RATE_LIMITS
    assert volc(limits) == {CREATE: 50, MODIFY: 50, BATCH_GET: 100}
    limits[CREATE] = 1
    assert DEFAULT_RATE_LIMITS[CREATE] == 50  # the defaults were not shared


def test_one_operation_overrides_only_itself() -> None:
    limits = parse_rate_limits(f"{CREATE}=5")
    assert volc(limits) == {CREATE: 5, MODIFY: 50, BATCH_GET: 100}
    assert limits["coze:CreateConversation"] == 50


def test_spaces_and_empty_parts_are_tolerated() -> None:
    limits = parse_rate_limits(f" {CREATE} = 5 ,, {BATCH_GET}=7 ,")
    assert volc(limits) == {CREATE: 5, MODIFY: 50, BATCH_GET: 7}


def test_star_sets_every_known_operation() -> None:
    assert set(parse_rate_limits("*=1000").values()) == {1000}
    assert len(parse_rate_limits("*=1000")) == len(DEFAULT_RATE_LIMITS)


def test_coze_operations_are_limitable_and_default_to_50_or_100() -> None:
    limits = parse_rate_limits("coze:CreateMessage=3")
    assert limits["coze:CreateMessage"] == 3
    assert limits["coze:ListMessages"] == 100
    assert limits["coze:UpdateConversation"] == 50


def test_named_entries_override_star_wherever_they_stand() -> None:
    assert volc(parse_rate_limits(f"*=10,{CREATE}=5")) == {CREATE: 5, MODIFY: 10, BATCH_GET: 10}
    assert volc(parse_rate_limits(f"{CREATE}=5,*=10")) == {CREATE: 5, MODIFY: 10, BATCH_GET: 10}
    assert parse_rate_limits(f"{CREATE}=5,{CREATE}=6")[CREATE] == 6


def test_unknown_operation_is_refused() -> None:
    # A misspelt name would otherwise leave the real operation at its default, silently.
    with pytest.raises(ValueError, match="unknown operation 'CreateConversations'"):
        parse_rate_limits("CreateConversations=3")
    with pytest.raises(ValueError, match="unknown operation ''"):
        parse_rate_limits("=5")


def test_custom_defaults() -> None:
    assert parse_rate_limits("*=2", defaults={"A": 1, "B": 9}) == {"A": 2, "B": 2}
    assert parse_rate_limits("", defaults={}) == {}


@pytest.mark.parametrize(
    "text",
    [
        CREATE,
        f"{CREATE}=",
        f"{CREATE}=0",
        f"{CREATE}=-1",
        f"{CREATE}=+5",
        f"{CREATE}=abc",
        f"{CREATE}=1.5",
        f"{CREATE}=5=6",
        f"{CREATE}=5;{MODIFY}=6",
        "*=0",
        f"{MODIFY}=1,{CREATE}",
    ],
)
def test_bad_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="bad rate limit"):
        parse_rate_limits(text)


def test_settings_from_env_read_the_limits() -> None:
    settings = Settings.from_env({"CONVHUB_RATE_LIMITS": f"{CREATE}=3"})
    assert settings.rate_limits[CREATE] == 3
    assert settings.rate_limits[BATCH_GET] == 100
    assert Settings.from_env({}).rate_limits == dict(DEFAULT_RATE_LIMITS)
    with pytest.raises(ValueError):
        Settings.from_env({"CONVHUB_RATE_LIMITS": f"{CREATE}=zero"})


def test_every_declared_operation_has_a_default_limit_and_nothing_else_does() -> None:
    shared = {name for a in ACTIONS.values() for name in a.also_counts}
    shared |= {name for e in ENDPOINTS for name in e.also_counts}
    assert shared == {SEND_RATE}
    declared = {"coze:" + e.operation for e in ENDPOINTS} | set(ACTIONS) | shared
    assert set(DEFAULT_RATE_LIMITS) == declared
    assert DEFAULT_RATE_LIMITS[SEND_RATE] == 50  # §5.6: messages per second per account
    assert all(DEFAULT_RATE_LIMITS[a.name] == a.qps for a in ACTIONS.values())
    assert all(DEFAULT_RATE_LIMITS["coze:" + e.operation] == e.qps for e in ENDPOINTS)


def test_the_redis_failure_mode_is_open_unless_set_to_closed() -> None:
    assert Settings.from_env({}).redis_failure == "open"
    assert Settings.from_env({"CONVHUB_REDIS_FAILURE": "closed"}).redis_failure == "closed"
    assert Settings.from_env({"CONVHUB_REDIS_FAILURE": " Open "}).redis_failure == "open"
    with pytest.raises(ValueError, match="expected open or closed"):
        Settings.from_env({"CONVHUB_REDIS_FAILURE": "ignore"})
