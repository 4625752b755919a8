"""A Redis that counts the rate limits goes away and comes back: no request answers 500, the
configured policy (open: count per process; closed: 503) holds meanwhile, ``/readyz`` says so, and
everything is as before once Redis is back, without a restart. The Redis is a private
``redis-server`` that the test stops and starts on the same port."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from convhub.config import Settings, parse_rate_limits
from convhub.ratelimit.limiter import RedisFailure
from tests.metrics import scrape, value
from tests.outages import PrivateRedis, eventually, private_redis, silent_port
from tests.support import NO_LIMITS, LiveServer, Tenant, VolcClient, new_tenant, new_token

BATCH_GET = "BatchGetConversations"


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


def served(
    database_url: str, redis_url: str, failure: RedisFailure, limits: str = NO_LIMITS
) -> LiveServer:
    return LiveServer(
        Settings(
            database_url=database_url,
            redis_url=redis_url,
            redis_failure=failure,
            rate_limits=parse_rate_limits(limits),
        )
    )


def batch_get(tenant: Tenant) -> dict[str, object]:
    return {"AppId": tenant.app_id, "ConversationShortId": [1]}


def limiter_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "convhub.ratelimit.limiter" and r.levelno == logging.WARNING
    ]


def test_fail_open_counts_in_the_process_while_redis_is_down_and_uses_it_again_when_back(
    database_url: str, redis: PrivateRedis, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = new_tenant(database_url)
    limits = f"{NO_LIMITS},GetConversationUserCount=3"
    with (
        served(database_url, redis.url, "open", limits) as live,
        httpx.Client(base_url=live.base_url, timeout=10) as http,
    ):
        volc = VolcClient(live, tenant)
        volc.ok(BATCH_GET, batch_get(tenant))
        assert redis.keys() > 0  # counted in Redis
        assert http.get("/readyz").json() == {"status": "ready", "problems": [], "degraded": []}

        redis.stop()
        statuses = [volc.call(BATCH_GET, batch_get(tenant)).status_code for _ in range(20)]
        assert statuses == [200] * 20
        # The limits still hold, counted in this process: no action runs unlimited.
        count = {"AppId": tenant.app_id, "ConversationShortId": 1}
        limited = [volc.call("GetConversationUserCount", count).status_code for _ in range(8)]
        assert set(limited) == {400, 429} and limited[0] == 400, limited  # 400: not found
        assert 1 <= limited.count(400) <= 4, limited
        samples = scrape(http)
        assert value(samples, "convhub_redis_fail_open_total") == 28
        assert value(samples, "convhub_requests_total", dialect="volc", action=BATCH_GET,
                     outcome="internal") == 0  # fmt: skip
        ready = eventually(lambda: http.get("/readyz"), lambda r: r.json()["degraded"] != [])
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "problems": [],
            "degraded": [
                "Redis is unreachable: ConnectionError: rate limits are counted per process"
            ],
        }
        warned = limiter_warnings(caplog)
        assert len(warned) == 1 and "Redis is unreachable" in warned[0], warned  # not 28

        redis.start()  # empty: nothing counted survived
        eventually(lambda: (volc.ok(BATCH_GET, batch_get(tenant)), redis.keys())[1], bool)
        before = value(scrape(http), "convhub_redis_fail_open_total")
        for _ in range(5):
            volc.ok(BATCH_GET, batch_get(tenant))
        assert value(scrape(http), "convhub_redis_fail_open_total") == before
        eventually(lambda: http.get("/readyz").json()["degraded"], lambda d: d == [])
        assert "Redis is reachable again" in limiter_warnings(caplog)[-1]
        volc.close()


def test_fail_closed_answers_503_in_both_dialects_while_redis_is_down(
    database_url: str, redis: PrivateRedis
) -> None:
    tenant = new_tenant(database_url)
    token = new_token(database_url, tenant.account, user="ann")
    bearer = {"Authorization": f"Bearer {token}"}
    create = ("/v1/conversation/create", {"bot_id": "bot"})
    with (
        served(database_url, redis.url, "closed") as live,
        httpx.Client(base_url=live.base_url, timeout=10) as http,
    ):
        volc = VolcClient(live, tenant)
        volc.ok(BATCH_GET, batch_get(tenant))
        assert http.post(create[0], json=create[1], headers=bearer).json()["code"] == 0

        redis.stop()
        for _ in range(5):
            response = volc.call(BATCH_GET, batch_get(tenant))
            assert response.status_code == 503, response.text
            error = response.json()["ResponseMetadata"]["Error"]
            assert (error["Code"], error["CodeN"]) == ("ServiceUnavailable", 100503)
            answer = http.post(create[0], json=create[1], headers=bearer)
            assert (answer.status_code, answer.json()["code"]) == (503, 5000), answer.text
        ready = eventually(lambda: http.get("/readyz"), lambda r: r.status_code == 503)
        assert ready.json() == {
            "status": "not ready",
            "problems": ["Redis is unreachable: ConnectionError"],
            "degraded": [],
        }
        samples = scrape(http)
        for dialect, action in (("volc", BATCH_GET), ("coze", "CreateConversation")):
            assert value(samples, "convhub_requests_total", dialect=dialect, action=action,
                         outcome="unavailable") == 5  # fmt: skip
        assert value(samples, "convhub_redis_fail_open_total") == 0

        redis.start()
        eventually(lambda: volc.call(BATCH_GET, batch_get(tenant)).status_code, lambda s: s == 200)
        assert http.post(create[0], json=create[1], headers=bearer).json()["code"] == 0
        eventually(lambda: http.get("/readyz").status_code, lambda s: s == 200)
        volc.close()


@pytest.mark.parametrize("failure", ["open", "closed"])
def test_a_silent_redis_costs_a_short_timeout_not_a_stalled_request(
    database_url: str, failure: RedisFailure
) -> None:
    tenant = new_tenant(database_url)
    with (
        silent_port() as port,
        served(database_url, f"redis://127.0.0.1:{port}/0", failure) as live,
        httpx.Client(base_url=live.base_url, timeout=10) as http,
    ):
        volc = VolcClient(live, tenant)
        started = time.monotonic()
        for _ in range(20):
            asked = time.monotonic()
            response = volc.call(BATCH_GET, batch_get(tenant))
            assert response.status_code == (200 if failure == "open" else 503), response.text
            assert time.monotonic() - asked < 2.0
        # One timeout (0.5 s) per back-off period (1 s) at most, not one per request.
        assert time.monotonic() - started < 5.0
        ready = http.get("/readyz").json()
        problem = "Redis is unreachable: TimeoutError"
        if failure == "open":
            assert ready["problems"] == [] and ready["degraded"] == [
                f"{problem}: rate limits are counted per process"
            ]
        else:
            assert ready["problems"] == [problem]
        volc.close()
