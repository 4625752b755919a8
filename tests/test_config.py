"""Settings: the rate-limit syntax ``Operation=N,*=N`` and the environment."""

from __future__ import annotations

import pytest

from convhub.config import DEFAULT_RATE_LIMITS, ConfigError, Settings, parse_rate_limits
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


NUMBERS = {
    "CONVHUB_MAX_BODY_BYTES": ("max_body_bytes", "1", 1),
    "CONVHUB_ACCESS_CACHE_SECONDS": ("access_cache_seconds", "0", 0.0),
    "CONVHUB_SIGNATURE_WINDOW_SECONDS": ("signature_window_seconds", "1", 1),
    "CONVHUB_POOL_SIZE": ("pool_size", "1", 1),
    "CONVHUB_MAX_QUEUED_WRITES": ("max_queued_writes", "1", 1),
    "CONVHUB_KEPT_CONVERSATIONS": ("kept_conversations", "0", 0),
    "CONVHUB_MAX_GROUP_MEMBERS": ("max_group_members", "1", 1),
    "CONVHUB_MAX_LIVE_GROUP_MEMBERS": ("max_live_group_members", "1", 1),
    "CONVHUB_MAX_USER_GROUPS": ("max_user_groups", "1", 1),
    "CONVHUB_MAX_LIVE_GROUPS_PER_APP": ("max_live_groups_per_app", "1", 1),
}


@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_each_number_takes_its_least_value_and_an_empty_variable_is_unset(name: str) -> None:
    field, least, value = NUMBERS[name]
    assert getattr(Settings.from_env({name: f" {least} "}), field) == value
    assert getattr(Settings.from_env({name: ""}), field) == getattr(Settings(), field)


@pytest.mark.parametrize("name", sorted(NUMBERS))
@pytest.mark.parametrize("text", ["1MB", "-1", "1e3x", "inf", "nan", "1_0_"])
def test_a_number_that_is_not_usable_is_a_config_error_naming_the_variable(
    name: str, text: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({name: text})
    assert str(raised.value).startswith(f"{name}={text!r} is not usable: it takes ")
    assert "\n" not in str(raised.value)


def test_whole_numbers_are_whole() -> None:
    with pytest.raises(
        ConfigError, match=r"CONVHUB_POOL_SIZE='2\.5' is not usable: it takes a whole"
    ):
        Settings.from_env({"CONVHUB_POOL_SIZE": "2.5"})
    assert Settings.from_env({"CONVHUB_ACCESS_CACHE_SECONDS": "2.5"}).access_cache_seconds == 2.5


@pytest.mark.parametrize("url", ["foo", "mysql://h/db", "sqlite://", "sqlite:///:memory:"])
def test_a_database_url_convhub_cannot_use_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"^CONVHUB_DATABASE_URL '"):
        Settings.from_env({"CONVHUB_DATABASE_URL": url})


def test_bad_rate_limits_name_their_variable() -> None:
    with pytest.raises(ConfigError, match=r"^CONVHUB_RATE_LIMITS='\*=0': bad rate limit"):
        Settings.from_env({"CONVHUB_RATE_LIMITS": "*=0"})


def test_a_redis_url_the_client_cannot_take_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^CONVHUB_REDIS_URL 'redis-host:6379' is not a Redis"):
        Settings.from_env({"CONVHUB_REDIS_URL": "redis-host:6379"})
    assert Settings.from_env({"CONVHUB_REDIS_URL": "rediss://h:1/0"}).redis_url == "rediss://h:1/0"
    assert Settings.from_env({"CONVHUB_REDIS_URL": ""}).redis_url is None


def test_the_redis_failure_mode_is_open_unless_set_to_closed() -> None:
    assert Settings.from_env({}).redis_failure == "open"
    assert Settings.from_env({"CONVHUB_REDIS_FAILURE": "closed"}).redis_failure == "closed"
    assert Settings.from_env({"CONVHUB_REDIS_FAILURE": " Open "}).redis_failure == "open"
    with pytest.raises(ValueError, match="expected open or closed"):
        Settings.from_env({"CONVHUB_REDIS_FAILURE": "ignore"})
