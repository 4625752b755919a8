"""``/metrics`` and the request log after a known mix of requests: every request is counted once
under its dialect, action and outcome, timed, and logged with the request id its client saw."""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from convhub.config import Settings, parse_rate_limits
from convhub.observe import JsonFormatter, logging_config
from tests.metrics import scrape, series, value
from tests.support import (
    NO_LIMITS,
    LiveServer,
    VolcClient,
    new_tenant,
    new_token,
    signed_headers,
)

VERSION = "2020-12-01"


@pytest.fixture
def live(database_url: str) -> Iterator[LiveServer]:
    """A server of its own: its metrics count this test's requests and nothing else."""
    limits = parse_rate_limits(f"{NO_LIMITS},CreateConversation=3")
    with LiveServer(Settings(database_url=database_url, rate_limits=limits)) as server:
        yield server


def test_metrics_and_log_lines_match_a_known_mix_of_requests(
    live: LiveServer, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="convhub.access")
    tenant = new_tenant(database_url)
    bearer = {"Authorization": f"Bearer {new_token(database_url, tenant.account, user='ann')}"}
    volc = VolcClient(live, tenant)
    http = volc.http
    seen: list[tuple[str, str, str, int, str]] = []  # dialect, action, outcome, status, id

    def volc_call(action: str, body: object, outcome: str, **options: str) -> None:
        if options:  # signed with another secret
            data = json.dumps(body).encode()
            query = {"Action": action, "Version": VERSION}
            headers = signed_headers(tenant, live.host, query, data, **options)
            response = http.post("/", params=query, content=data, headers=headers)
        else:
            response = volc.call(action, body)
        metadata = response.json()["ResponseMetadata"]
        got = metadata["Error"]["Code"] if "Error" in metadata else "ok"
        assert got == outcome, response.text
        seen.append(("volc", action, got, response.status_code, metadata["RequestId"]))

    def coze_call(method: str, path: str, action: str, **options: object) -> httpx.Response:
        response = http.request(method, path, **options)  # type: ignore[arg-type]
        outcome = "ok" if response.json()["code"] == 0 else str(response.json()["code"])
        seen.append(("coze", action, outcome, response.status_code, response.headers["x-tt-logid"]))
        return response

    group = {"AppId": tenant.app_id, "OwnerUserId": 1,
             "ConversationCoreInfo": {"ConversationType": 2}}  # fmt: skip
    made = 0
    while True:  # three a second: one of the next few is refused
        response = volc.call("CreateConversation", group)
        metadata = response.json()["ResponseMetadata"]
        code = metadata["Error"]["Code"] if "Error" in metadata else "ok"
        seen.append(("volc", "CreateConversation", code, response.status_code,
                     metadata["RequestId"]))  # fmt: skip
        if code != "ok":
            assert code == "FlowLimitExceeded"
            break
        made += 1
        assert made <= 10
    volc_call("BatchGetConversations", {"AppId": tenant.app_id, "ConversationShortId": [1]}, "ok")
    volc_call("BatchGetConversations", {"AppId": tenant.app_id, "ConversationShortId": [2]}, "ok")
    volc_call(
        "ModifyConversation",
        {"AppId": tenant.app_id, "ConversationCoreInfo": {"ConversationShortId": 7, "Name": "x"}},
        "ConversationNotFound",
    )
    volc_call("BatchGetConversations", {"AppId": tenant.app_id}, "SignatureDoesNotMatch",
              secret_key="not-the-secret")  # fmt: skip
    volc_call("NoSuchAction", {}, "InvalidActionOrVersion")
    wrong = http.get("/", params={"Action": "CreateConversation", "Version": VERSION})
    seen.append(("volc", "CreateConversation", "MethodNotAllowed", wrong.status_code,
                 wrong.json()["ResponseMetadata"]["RequestId"]))  # fmt: skip
    for _ in range(2):
        created = coze_call("POST", "/v1/conversation/create", "CreateConversation",
                            json={"bot_id": "b"}, headers=bearer)  # fmt: skip
        assert created.json()["code"] == 0
    coze_call("POST", "/v1/conversation/create", "CreateConversation", json={},
              headers={"Authorization": "Bearer pat_nobody"})  # fmt: skip
    coze_call("GET", "/v1/nothing/here", "unknown", headers=bearer)
    http.get("/healthz")  # not an API request: neither counted nor logged
    http.get("/readyz")

    outcome_of = {
        "ok": "ok",
        "FlowLimitExceeded": "rate_limited",
        "ConversationNotFound": "conversation_not_found",
        "SignatureDoesNotMatch": "signature_mismatch",
        "InvalidActionOrVersion": "unknown_action",
        "MethodNotAllowed": "method_not_allowed",
        "4100": "invalid_token",
        "4200": "route_not_found",
    }
    expected = Counter(
        (("action", "unknown" if a == "NoSuchAction" else a), ("dialect", d),
         ("outcome", outcome_of[o]))
        for d, a, o, _, _ in seen
    )  # fmt: skip
    samples = scrape(http)
    assert series(samples, "convhub_requests_total") == dict(expected)
    timed = Counter((("action", key[0][1]), ("dialect", key[1][1])) for key in expected.elements())
    assert series(samples, "convhub_request_duration_seconds_count") == dict(timed)
    assert value(samples, "convhub_rate_limited_total", dialect="volc",
                 action="CreateConversation") == 1  # fmt: skip
    assert value(samples, "convhub_redis_fail_open_total") == 0
    assert value(samples, "convhub_database_errors_total", operation="write") == 0
    # Every create that passed its checks was a write (the refused one never reached the writer).
    assert value(samples, "convhub_writer_batch_size_sum") >= made + 2
    assert value(samples, "convhub_writer_queue_depth") == 0
    # Only on PostgreSQL do other processes write, and does a process listen for their changes.
    listening = 1 if database_url.startswith("postgresql") else 0
    assert value(samples, "convhub_listening_processes") == listening

    # One log line per request, carrying what its client saw.
    lines = {
        r.request["request_id"]: r.request  # type: ignore[attr-defined]
        for r in caplog.records
        if r.name == "convhub.access"
    }
    assert len(lines) == len(seen) == sum(1 for r in caplog.records if r.name == "convhub.access")
    for dialect, action, outcome, status, request_id in seen:
        line = lines[request_id]
        assert (line["dialect"], line["status"], line["outcome"]) == (
            dialect, status, outcome_of[outcome],
        )  # fmt: skip
        assert line["action"] == ("unknown" if action == "NoSuchAction" else action)
        assert line["latency_ms"] >= 0
        refused_early = outcome in {"SignatureDoesNotMatch", "InvalidActionOrVersion",
                                    "MethodNotAllowed", "4100", "4200"}  # fmt: skip
        assert (line["account"] is None) == refused_early, line
    volc.close()


def test_a_json_log_line_is_one_object_with_the_request_fields_at_the_top() -> None:
    fields = {"request_id": "2026X", "dialect": "coze", "action": "CreateConversation",
              "account": 3, "outcome": "ok", "status": 200, "latency_ms": 1.5}  # fmt: skip
    record = logging.LogRecord("convhub.access", logging.INFO, __file__, 1, "%s", ("x",), None)
    record.request = fields
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed.items() >= {**fields, "level": "info", "logger": "convhub.access"}.items()
    assert parsed["time"].endswith("+00:00") and isinstance(parsed["pid"], int)

    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord(
            "convhub.x", logging.ERROR, __file__, 1, "went %s", ("wrong",), sys.exc_info()
        )
    parsed = json.loads(JsonFormatter().format(failed))
    assert parsed["message"] == "went wrong" and "ValueError: boom" in parsed["exception"]


def test_only_convhub_and_uvicorn_log_below_warning() -> None:
    """SQLAlchemy at INFO or DEBUG logs statements, parameters and rows (secret keys among
    them): whatever ``--log-level`` says, everything but convhub and uvicorn logs warnings only."""
    config = logging_config(log_format="json", level="debug", access_log=True)
    assert config["root"]["level"] == "WARNING"
    assert set(config["loggers"]) == {
        "uvicorn", "uvicorn.error", "uvicorn.access", "convhub", "convhub.access",
    }  # fmt: skip
    quiet = logging_config(log_format="text", level="info", access_log=False)
    assert quiet["loggers"]["convhub.access"]["level"] == "WARNING"
    with pytest.raises(ValueError, match="trace"):
        logging_config(log_format="text", level="trace", access_log=True)
