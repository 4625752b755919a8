"""The shape every action follows: declared once per dialect, limited, mapped, documented."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from convhub.config import DEFAULT_RATE_LIMITS
from convhub.dialects.coze import actions as coze_actions
from convhub.dialects.coze.errors import COZE_ERRORS
from convhub.dialects.volc import actions as volc_actions
from convhub.dialects.volc.errors import VOLC_ERRORS
from convhub.domain.permissions import Permission
from convhub.errors import ConvhubError, ErrorCode
from convhub.ratelimit.limiter import RateLimiter

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_action_of_both_dialects_has_a_limit() -> None:
    for action in volc_actions.ACTIONS.values():
        assert DEFAULT_RATE_LIMITS[action.name] == action.qps > 0
    for endpoint in coze_actions.ENDPOINTS:
        assert DEFAULT_RATE_LIMITS["coze:" + endpoint.operation] == endpoint.qps > 0


def test_an_operation_without_a_limit_is_refused_not_run_unlimited() -> None:
    limiter = RateLimiter(per_second={"Known": 5})

    async def scenario() -> None:
        await limiter.acquire(1, "Known")
        with pytest.raises(ConvhubError) as raised:
            await limiter.acquire(1, "Undeclared")
        assert raised.value.code is ErrorCode.INTERNAL

    asyncio.run(scenario())


def test_every_coze_endpoint_names_a_permission_and_a_distinct_route() -> None:
    seen: set[tuple[str, str]] = set()
    for endpoint in coze_actions.ENDPOINTS:
        assert isinstance(endpoint.permission, Permission)
        assert (endpoint.method, endpoint.path) not in seen
        seen.add((endpoint.method, endpoint.path))
        found = coze_actions.match(endpoint.path.replace(":conversation_id", "1").replace(
            ":message_id", "2"))  # fmt: skip
        assert found is not None and found[0][endpoint.method] is endpoint


@pytest.mark.parametrize("table", [VOLC_ERRORS, COZE_ERRORS], ids=["volc", "coze"])
def test_every_error_code_any_action_can_raise_has_a_wire_form(
    table: dict[ErrorCode, object],
) -> None:
    assert set(table) == set(ErrorCode)


def test_readme_action_tables_are_the_declarations() -> None:
    assert volc_actions.markdown_table() in README
    assert coze_actions.markdown_table() in README


def test_overload_and_unavailability_have_their_documented_answers() -> None:
    assert VOLC_ERRORS[ErrorCode.OVERLOADED] == ("FlowLimitExceeded", 100429, 429)
    assert VOLC_ERRORS[ErrorCode.UNAVAILABLE] == ("ServiceUnavailable", 100503, 503)
    assert COZE_ERRORS[ErrorCode.OVERLOADED] == (4008, 429)
    assert COZE_ERRORS[ErrorCode.UNAVAILABLE] == (5000, 503)
