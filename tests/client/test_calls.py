"""The client's handling of answers, retries and pages, against an in-process httpx transport that
answers what each test needs (the live server's behaviour is in test_live.py)."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from convhub.client import (
    NO_RETRIES,
    AsyncImClient,
    ImClient,
    ImError,
    Retries,
    UnexpectedResponseError,
)
from convhub.client.pages import MESSAGES, PARTICIPANTS, Pager
from convhub.client.retries import parse_retry_after
from convhub.wire.signing import parse_x_date

Answer = Callable[[httpx.Request], httpx.Response]
ENDPOINT = "http://im.test:8000"
BIG = (1 << 63) - 1  # int64's largest: far beyond what a float holds exactly
ODD = (1 << 53) + 1  # the first integer a float cannot hold


def envelope(
    result: dict[str, Any] | None = None,
    *,
    error: dict[str, Any] | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    metadata: dict[str, Any] = {"RequestId": "req-1", "Action": "A", "Version": "2020-12-01"}
    payload: dict[str, Any] = {"ResponseMetadata": metadata}
    if error is not None:
        metadata["Error"] = error
    else:
        payload["Result"] = result if result is not None else {}
    return httpx.Response(status, json=payload, headers=headers)


FLOW_LIMIT = {"Code": "FlowLimitExceeded", "CodeN": 100429, "Message": "slow down"}


class Recorder:
    """A transport that answers from a list, in turn, and keeps every request."""

    def __init__(self, *answers: httpx.Response | Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client(recorder: Recorder, sleeps: list[float], **options: Any) -> ImClient:
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    return ImClient("AKtest", "SKtest", endpoint=ENDPOINT, http_client=http,
                    sleep=sleeps.append, **options)  # fmt: skip


def async_client(recorder: Recorder, sleeps: list[float], **options: Any) -> AsyncImClient:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return AsyncImClient("AKtest", "SKtest", endpoint=ENDPOINT, http_client=http, sleep=sleep,
                         **options)  # fmt: skip


# --- requests and results ------------------------------------------------------------------------


def test_a_call_posts_signed_json_and_returns_the_result_with_exact_ids(
    sleeps: list[float],
) -> None:
    recorder = Recorder(envelope({"ConversationShortId": BIG, "Owner": ODD, "Name": "会话"}))
    result = client(recorder, sleeps).call("CreateConversation", {"OwnerUserId": ODD, "Id": BIG})
    assert result == {"ConversationShortId": BIG, "Owner": ODD, "Name": "会话"}
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{ENDPOINT}/?Action=CreateConversation&Version=2020-12-01"
    assert request.content == f'{{"OwnerUserId":{ODD},"Id":{BIG}}}'.encode()
    assert request.headers["content-type"] == "application/json"
    assert (
        request.headers["authorization"].startswith("HMAC-SHA256 Credential=AKtest/")
        and "/cn-north-1/rtc/request, SignedHeaders=content-type;host;x-content-sha256;x-date,"
        in (request.headers["authorization"])
    )
    assert parse_x_date(request.headers["x-date"]) is not None


def test_region_service_and_version_are_configurable(sleeps: list[float]) -> None:
    recorder = Recorder(envelope({}))
    im = client(recorder, sleeps, region="ap-southeast-1", service="im", version="2099-01-01")
    im.call("A", {})
    request = recorder.requests[0]
    assert request.url.params["Version"] == "2099-01-01"
    assert "/ap-southeast-1/im/request," in request.headers["authorization"]


@pytest.mark.parametrize(
    "endpoint", ["open.volcengineapi.com", "ftp://host", "http://host/im", "http://host/?a=1"]
)
def test_an_endpoint_with_a_path_or_no_scheme_is_refused(endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        ImClient("AK", "SK", endpoint=endpoint)


def test_the_default_endpoint_is_the_volcengine_cloud() -> None:
    recorder = Recorder(envelope({}))
    http = httpx.Client(transport=httpx.MockTransport(recorder))
    ImClient("AK", "SK", http_client=http).call("A", {})
    assert recorder.requests[0].url.host == "open.volcengineapi.com"
    assert recorder.requests[0].url.scheme == "https"


# --- errors --------------------------------------------------------------------------------------


def test_an_error_envelope_raises_im_error_with_every_field(sleeps: list[float]) -> None:
    error = {"Code": "InvalidParam", "CodeN": 1000004, "Message": "AppId is required"}
    recorder = Recorder(envelope(error=error, status=400))
    with pytest.raises(ImError) as raised:
        client(recorder, sleeps).call("CreateConversation", {})
    assert type(raised.value) is ImError
    assert (raised.value.code, raised.value.code_n, raised.value.message) == (
        "InvalidParam", 1000004, "AppId is required")  # fmt: skip
    assert (raised.value.request_id, raised.value.status) == ("req-1", 400)
    assert str(raised.value) == "InvalidParam: AppId is required (RequestId req-1)"
    assert len(recorder.requests) == 1 and sleeps == []


def test_an_error_on_a_2xx_is_still_an_error(sleeps: list[float]) -> None:
    recorder = Recorder(envelope(error={"Code": "X", "CodeN": 7, "Message": "m"}))
    with pytest.raises(ImError) as raised:
        client(recorder, sleeps).call("A", {})
    assert (raised.value.code, raised.value.status) == ("X", 200)


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (httpx.Response(502, text="<html>Bad Gateway</html>"),
         "HTTP 502 with a body that is not JSON"),
        (httpx.Response(200, json=[1, 2]), "HTTP 200 with JSON without ResponseMetadata"),
        (httpx.Response(200, json={"Result": {}}), "HTTP 200 with JSON without ResponseMetadata"),
        (httpx.Response(500, json={"ResponseMetadata": {"RequestId": "r"}}),
         "HTTP 500 with a failure without ResponseMetadata.Error"),
        (httpx.Response(200, json={"ResponseMetadata": {"RequestId": "r"}}),
         "HTTP 200 with no Result object"),
        (httpx.Response(200, json={"ResponseMetadata": {}, "Result": [1]}),
         "HTTP 200 with no Result object"),
    ],
)  # fmt: skip
def test_an_answer_that_is_not_an_envelope_says_what_it_was(
    sleeps: list[float], answer: httpx.Response, what: str
) -> None:
    with pytest.raises(UnexpectedResponseError) as raised:
        client(Recorder(answer), sleeps).call("CreateConversation", {})
    error = raised.value
    assert isinstance(error, ImError)
    assert error.code == "UnexpectedResponse" and error.code_n == 0
    assert error.status == answer.status_code
    assert error.message.startswith(
        f"POST {ENDPOINT}/?Action=CreateConversation&Version=2020-12-01 answered {what}: "
    ), error.message


def test_a_long_unexpected_answer_is_quoted_in_part(sleeps: list[float]) -> None:
    with pytest.raises(UnexpectedResponseError) as raised:
        client(Recorder(httpx.Response(503, text="x" * 5000)), sleeps).call("A", {})
    assert raised.value.message.endswith("x'…") and len(raised.value.message) < 400


def test_im_errors_survive_pickling() -> None:
    for error in (
        ImError(code="C", code_n=1, message="m", request_id="r", status=400),
        UnexpectedResponseError("odd", status=502),
    ):
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
        assert type(copy) is type(error) and repr(copy) == repr(error) and str(copy) == str(error)


# --- retries -------------------------------------------------------------------------------------


def test_flow_limit_is_retried_with_growing_jittered_waits(sleeps: list[float]) -> None:
    refused = envelope(error=FLOW_LIMIT, status=429)
    recorder = Recorder(refused, refused, refused, envelope({"MessageId": 5}))
    im = client(recorder, sleeps, retries=Retries(max_retries=3, base_delay=1.0, max_delay=60))
    assert im.call("SendMessage", {"Content": "x"}) == {"MessageId": 5}
    assert len(recorder.requests) == 4
    assert [0.5 <= sleeps[0] <= 1, 1 <= sleeps[1] <= 2, 2 <= sleeps[2] <= 4] == [True] * 3
    # The same body each time, each signed anew.
    assert len({request.content for request in recorder.requests}) == 1


def test_retries_give_up_after_max_retries(sleeps: list[float]) -> None:
    recorder = Recorder(envelope(error=FLOW_LIMIT, status=429))
    with pytest.raises(ImError) as raised:
        client(recorder, sleeps, retries=Retries(max_retries=2, base_delay=0.01)).call("A", {})
    assert raised.value.code == "FlowLimitExceeded" and raised.value.status == 429
    assert len(recorder.requests) == 3 and len(sleeps) == 2


def test_no_retries_raises_the_first_refusal(sleeps: list[float]) -> None:
    recorder = Recorder(envelope(error=FLOW_LIMIT, status=429), envelope({}))
    with pytest.raises(ImError) as raised:
        client(recorder, sleeps, retries=NO_RETRIES).call("A", {})
    assert raised.value.code == "FlowLimitExceeded"
    assert len(recorder.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        {"Code": "InvalidParam", "CodeN": 1000004, "Message": "m"},
        {"Code": "ServiceUnavailable", "CodeN": 100503, "Message": "m"},
        {"Code": "InternalError", "CodeN": 100014, "Message": "m"},
    ],
)
def test_other_errors_are_not_retried(sleeps: list[float], error: dict[str, Any]) -> None:
    recorder = Recorder(envelope(error=error, status=503), envelope({}))
    with pytest.raises(ImError):
        client(recorder, sleeps).call("A", {})
    assert len(recorder.requests) == 1 and sleeps == []


def test_a_proxys_429_page_is_retried_too(sleeps: list[float]) -> None:
    recorder = Recorder(httpx.Response(429, text="Too Many Requests"), envelope({"Ok": True}))
    assert client(recorder, sleeps).call("A", {}) == {"Ok": True}
    assert len(sleeps) == 1


def test_retry_after_is_waited_exactly(sleeps: list[float]) -> None:
    refused = envelope(error=FLOW_LIMIT, status=429, headers={"Retry-After": "3"})
    recorder = Recorder(refused, envelope({}))
    client(recorder, sleeps).call("A", {})
    assert sleeps == [3.0]


def test_a_retry_after_beyond_max_delay_raises_at_once(sleeps: list[float]) -> None:
    refused = envelope(error=FLOW_LIMIT, status=429, headers={"Retry-After": "120"})
    recorder = Recorder(refused, envelope({}))
    with pytest.raises(ImError):
        client(recorder, sleeps, retries=Retries(max_delay=60)).call("A", {})
    assert len(recorder.requests) == 1 and sleeps == []


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=9), usegmt=True), now) == 9.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=9), usegmt=True), now) == 0.0
    for unreadable in (None, "", "soon", "-1", "1.5", "\u0663"):
        assert parse_retry_after(unreadable, now) is None


def test_retry_waits_are_bounded() -> None:
    retries = Retries(max_retries=10, base_delay=0.5, max_delay=4)
    refusal = ImError(
        code="FlowLimitExceeded", code_n=100429, message="", request_id="", status=429
    )
    lowest = [retries.delay(refusal, n, None, draw=lambda: 0.0) for n in range(6)]
    highest = [retries.delay(refusal, n, None, draw=lambda: 1.0) for n in range(6)]
    assert lowest == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert highest == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert retries.delay(refusal, 10, None) is None
    with pytest.raises(ValueError):
        Retries(max_retries=-1)


# --- pages ---------------------------------------------------------------------------------------


def message_pages(request: httpx.Request) -> httpx.Response:
    """Messages 1..7 by index, forward, pages of the requested size."""
    body = json.loads(request.content)
    cursor, limit = max(body["Cursor"], 1), body["Limit"]
    page = list(range(cursor, min(cursor + limit, 8)))
    return envelope({"Messages": [{"IndexInConversation": i} for i in page],
                     "HasMore": page[-1] < 7, "NewCursor": page[-1] + 1})  # fmt: skip


def test_a_walk_requests_each_page_once_and_yields_every_item(sleeps: list[float]) -> None:
    recorder = Recorder(message_pages)
    im = client(recorder, sleeps)
    walked = im._walk(MESSAGES, {"AppId": 1, "ConversationShortId": BIG, "Cursor": 0, "Limit": 3})
    assert [m["IndexInConversation"] for m in walked] == [1, 2, 3, 4, 5, 6, 7]
    assert [body["Cursor"] for body in recorder.bodies()] == [0, 4, 7]
    assert all(body["ConversationShortId"] == BIG for body in recorder.bodies())


def test_an_async_walk_does_the_same(sleeps: list[float]) -> None:
    recorder = Recorder(message_pages)

    async def walk() -> list[Any]:
        async with async_client(recorder, sleeps) as im:
            request = {"AppId": 1, "ConversationShortId": 5, "Cursor": 0, "Limit": 2}
            return [m["IndexInConversation"] async for m in im._walk(MESSAGES, request)]

    assert asyncio.run(walk()) == [1, 2, 3, 4, 5, 6, 7]
    assert [body["Cursor"] for body in recorder.bodies()] == [0, 3, 5, 7]


def test_a_walk_stops_when_asked_to(sleeps: list[float]) -> None:
    recorder = Recorder(message_pages)
    walked = client(recorder, sleeps)._walk(MESSAGES, {"Cursor": 0, "Limit": 2})
    assert next(walked)["IndexInConversation"] == 1
    walked.close()
    assert len(recorder.requests) == 1


def pager_after(walk: Any, *results: dict[str, Any]) -> Iterator[Any]:
    pager = Pager(walk, {"Cursor": 0, "Limit": 5})
    for result in results:
        yield pager.after(result)


def test_a_negative_scan_cursor_ends_the_walk() -> None:
    assert list(pager_after(PARTICIPANTS, {"HasMore": True, "NextCursor": -1})) == [None]
    assert list(pager_after(PARTICIPANTS, {"HasMore": False, "NextCursor": 5})) == [None]


def test_a_cursor_met_twice_raises_instead_of_looping() -> None:
    results = [{"HasMore": True, "NewCursor": 5}, {"HasMore": True, "NewCursor": 0}]
    steps = pager_after(MESSAGES, *results)
    assert next(steps) == {"Cursor": 5, "Limit": 5}
    with pytest.raises(UnexpectedResponseError, match="already sent"):
        next(steps)


def test_has_more_without_a_cursor_raises() -> None:
    with pytest.raises(UnexpectedResponseError, match="HasMore with NewCursor None"):
        list(pager_after(MESSAGES, {"HasMore": True}))


# --- the async client ----------------------------------------------------------------------------


def test_the_async_client_retries_and_raises_like_the_sync_one(sleeps: list[float]) -> None:
    refused = envelope(error=FLOW_LIMIT, status=429)
    invalid = envelope(
        error={"Code": "InvalidParam", "CodeN": 1000004, "Message": "no"}, status=400
    )
    recorder = Recorder(refused, envelope({"Id": BIG}), invalid)

    async def scenario() -> None:
        async with async_client(recorder, sleeps) as im:
            assert await im.call("A", {"Id": BIG}) == {"Id": BIG}
            with pytest.raises(ImError) as raised:
                await im.call("A", {})
            assert (raised.value.code, raised.value.status) == ("InvalidParam", 400)

    asyncio.run(scenario())
    assert len(recorder.requests) == 3 and len(sleeps) == 1


def test_a_client_closes_only_the_http_client_it_made() -> None:
    http = httpx.Client(transport=httpx.MockTransport(Recorder(envelope({}))))
    ImClient("AK", "SK", http_client=http).close()
    assert not http.is_closed
    own = ImClient("AK", "SK")
    own.close()
    assert own._http.is_closed
