"""``/readyz`` follows the database: a PostgreSQL the server cannot reach makes it not ready and
every API call answer 503 (never 500), and once it is reachable again the server is ready and
serves, without a restart. The outage is a TCP proxy in the test process between the server and
PostgreSQL, cut and restored; the machine's PostgreSQL itself is never stopped."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import sqlalchemy as sa

from convhub.config import Settings, parse_rate_limits
from convhub.store.engine import create_database_engine
from tests import admin
from tests.metrics import scrape, series, value
from tests.outages import TcpProxy, eventually
from tests.support import NO_LIMITS, LiveServer, VolcClient, new_tenant, required_postgres

RECOVERY = 15.0  # seconds this test waits for each change it causes


def test_a_postgres_outage_is_503_and_not_ready_and_both_end_when_it_is_back() -> None:
    with required_postgres() as url:
        tenant = new_tenant(url)
        engine = create_database_engine(url, pool_size=1)
        try:
            token = admin.create_token(engine, tenant.account, user="ann").token
        finally:
            engine.dispose()
        parsed = sa.make_url(url)
        proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
        proxied = parsed.set(port=proxy.port).render_as_string(hide_password=False)
        settings = Settings(
            database_url=proxied,
            rate_limits=parse_rate_limits(NO_LIMITS),
            access_cache_seconds=0,  # every request reads its key or token from the database
        )
        try:
            with (
                LiveServer(settings) as live,
                httpx.Client(base_url=live.base_url, timeout=30) as http,
            ):
                volc = VolcClient(live, tenant)
                bearer = {"Authorization": f"Bearer {token}"}
                group = {"AppId": tenant.app_id, "OwnerUserId": 1,
                         "ConversationCoreInfo": {"ConversationType": 2}}  # fmt: skip
                made = volc.ok("CreateConversation", group)["ConversationShortId"]
                message = {"AppId": tenant.app_id, "ConversationShortId": made, "Sender": 1,
                           "MsgType": 10001, "Content": json.dumps({"text": "hi"})}  # fmt: skip
                calls: list[Callable[[], httpx.Response]] = [
                    lambda: volc.call("CreateConversation", group),
                    lambda: volc.call(
                        "BatchGetConversations",
                        {"AppId": tenant.app_id, "ConversationShortId": [made]},
                    ),
                    lambda: volc.call("SendMessage", message),
                    lambda: http.post(
                        "/v1/conversation/create", json={"bot_id": "b"}, headers=bearer
                    ),
                ]
                assert [call().status_code for call in calls] == [200] * len(calls)
                assert http.get("/readyz").status_code == 200

                proxy.cut()
                ready = eventually(
                    lambda: http.get("/readyz"), lambda r: r.status_code == 503, RECOVERY
                )
                assert ready.json()["problems"] == [
                    "the database is unreachable (OperationalError)"
                ], ready.text
                for _ in range(3):
                    for call in calls:
                        response = call()
                        assert response.status_code == 503, response.text
                        payload = response.json()
                        if "ResponseMetadata" in payload:
                            code = payload["ResponseMetadata"]["Error"]["Code"]
                            assert code == "ServiceUnavailable", payload
                        else:
                            assert payload["code"] == 5000, payload
                samples = scrape(http)
                outcomes = series(samples, "convhub_requests_total")
                assert not [k for k in outcomes if ("outcome", "internal") in k], outcomes
                assert value(samples, "convhub_database_errors_total", operation="read") > 0

                proxy.restore()
                eventually(lambda: http.get("/readyz").status_code, lambda s: s == 200, RECOVERY)
                eventually(lambda: calls[0]().status_code, lambda s: s == 200, RECOVERY)
                assert [call().status_code for call in calls] == [200] * len(calls)
                volc.close()
        finally:
            proxy.close()
