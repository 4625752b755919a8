"""End to end: the official Volcengine Python clients drive a running convhub.

Two clients, used exactly as shared/reference/signing.md shows: volc-sdk-python (``volcengine``,
``Service.json``) and volcenginesdkcore (``UniversalApi.do_call``). They talk to a live server
(a uvicorn thread, or ``convhub serve`` as a subprocess) on both storage engines, and the tests
check what the clients see and what the database holds afterwards.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
import volcenginesdkcore
from volcengine.ApiInfo import ApiInfo
from volcengine.base.Service import Service
from volcengine.Credentials import Credentials
from volcengine.ServiceInfo import ServiceInfo
from volcenginesdkcore.rest import ApiException
from volcenginesdkcore.retryer.backoff_strategy import NoBackoffStrategy
from volcenginesdkcore.universal import UniversalApi, UniversalInfo

from convhub.config import Settings, parse_rate_limits
from convhub.ids import NODE_BITS, SEQUENCE_BITS
from convhub.store.clock import QUIET
from convhub.store.engine import create_database_engine
from convhub.store.tables import conversations, node_leases, participants
from tests.support import (
    NO_LIMITS,
    REDIS_URL,
    VERSION,
    LiveServer,
    Tenant,
    child_env,
    convhub_command,
    free_port,
    new_tenant,
    required_postgres,
)

REGION = "cn-north-1"
SERVICE = "rtc"
ACTIONS = ("CreateConversation", "ModifyConversation", "BatchGetConversations")
SINGLE, GROUP, LIVE = 1, 2, 100
BEYOND_2_53 = 9007199254740993  # 2**53 + 1: a float cannot hold it
INT64_MAX = (1 << 63) - 1
CONCURRENCY = 50


# --------------------------------------------------------------------------- the two clients


@dataclass
class Answer:
    """What a client call came back with, the same for both SDKs."""

    status: int | None  # HTTP status, when the SDK exposes it (volcengine's json() does not)
    result: dict[str, Any] | None
    error: dict[str, Any] | None  # ResponseMetadata.Error
    text: str | None = None  # the body text, when the SDK hands it out

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None


def _from_error_body(status: int | None, raw: bytes | str) -> Answer:
    payload = json.loads(raw)
    metadata = payload["ResponseMetadata"]
    assert "Result" not in payload, payload
    text = raw.decode() if isinstance(raw, bytes) else raw
    return Answer(status=status, result=None, error=metadata["Error"], text=text)


class VolcSdk:
    """volc-sdk-python: ``Service.json(action, {}, body_bytes)``."""

    name = "volcengine"

    def __init__(self, host: str, access_key: str, secret_key: str) -> None:
        credentials = Credentials(access_key, secret_key, SERVICE, REGION)
        info = ServiceInfo(host, {"Accept": "application/json"}, credentials, 5, 30, scheme="http")
        api = {a: ApiInfo("POST", "/", {"Action": a, "Version": VERSION}, {}, {}) for a in ACTIONS}
        self.service = Service(info, api)
        # Service() may have swapped in keys from $VOLC_ACCESSKEY or ~/.volc.
        self.service.set_ak(access_key)
        self.service.set_sk(secret_key)

    def call(self, action: str, body: Any) -> Answer:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            text = self.service.json(action, {}, data)
        except Exception as error:
            # On any non-200 status json() raises a bare Exception carrying the body as bytes.
            raw = error.args[0] if error.args else None
            if not isinstance(raw, bytes):
                raise
            return _from_error_body(None, raw)
        payload = json.loads(text)
        error = payload["ResponseMetadata"].get("Error")
        return Answer(status=200, result=payload.get("Result"), error=error, text=text)

    def close(self) -> None:
        self.service.session.close()


class CoreSdk:
    """volcenginesdkcore: ``UniversalApi(ApiClient(cfg)).do_call(UniversalInfo(...), body)``."""

    name = "volcenginesdkcore"

    def __init__(
        self,
        host: str,
        access_key: str,
        secret_key: str,
        *,
        retries: int | None = None,
        backoff: bool = True,
    ) -> None:
        config = volcenginesdkcore.Configuration()
        config.ak, config.sk, config.region = access_key, secret_key, REGION
        config.host, config.scheme = host, "http"
        if retries is not None:
            config.num_max_retries = retries
        if not backoff:
            config.backoff_strategy = NoBackoffStrategy()
        self.client = volcenginesdkcore.ApiClient(config)
        self.api = UniversalApi(self.client)

    def call(self, action: str, body: Any) -> Answer:
        info = UniversalInfo(
            method="POST",
            service=SERVICE,
            version=VERSION,
            action=action,
            content_type="application/json",
        )
        try:
            result = self.api.do_call(info, body)
        except ApiException as error:
            # A 200 carrying ResponseMetadata.Error comes back with no body; convhub never
            # answers an error with 200, so that case is a failure of its own.
            assert error.body is not None, f"error without a body: {error}"
            return _from_error_body(error.status, error.body)
        assert isinstance(result, dict), result
        return Answer(status=200, result=result, error=None)

    def close(self) -> None:
        self.client.rest_client.pool_manager.clear()


Sdk = VolcSdk | CoreSdk
SDK_KINDS = {"volcengine": VolcSdk, "volcenginesdkcore": CoreSdk}


def ok(client: Sdk, action: str, body: Any) -> dict[str, Any]:
    answer = client.call(action, body)
    assert answer.ok, f"{client.name} {action}: {answer}"
    assert answer.status == 200
    assert answer.result is not None
    return answer.result


def fail(client: Sdk, action: str, body: Any) -> Answer:
    answer = client.call(action, body)
    assert not answer.ok, f"{client.name} {action} should have failed: {answer}"
    assert answer.error is not None
    assert type(answer.error["CodeN"]) is int and answer.error["CodeN"] != 0, answer.error
    assert answer.status != 200  # convhub never hides an error behind a 200
    return answer


# --------------------------------------------------------------------------- bodies and the DB


def single(tenant: Tenant, owner: int, other: int | None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "AppId": tenant.app_id,
        "OwnerUserId": owner,
        "ConversationCoreInfo": {"ConversationType": SINGLE},
        **extra,
    }
    if other is not None:
        body["OtherUserId"] = other
    return body


def group(
    tenant: Tenant,
    owner: int,
    *,
    kind: int = GROUP,
    idempotent_id: str | None = None,
    **core: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "AppId": tenant.app_id,
        "OwnerUserId": owner,
        "ConversationCoreInfo": {"ConversationType": kind, **core},
    }
    if idempotent_id is not None:
        body["IdempotentId"] = idempotent_id
    return body


def batch_get(
    client: Sdk, tenant: Tenant, ids: Sequence[int], skip: bool | None = None
) -> list[dict[str, Any]]:
    body: dict[str, Any] = {"AppId": tenant.app_id, "ConversationShortId": list(ids)}
    if skip is not None:
        body["SkipMemberCount"] = skip
    infos: list[dict[str, Any]] = ok(client, "BatchGetConversations", body)["ConversationCoreInfos"]
    return infos


@contextmanager
def database(url: str) -> Iterator[sa.Engine]:
    engine = create_database_engine(url, pool_size=1)
    try:
        yield engine
    finally:
        engine.dispose()


def count_conversations(url: str, app_id: int) -> int:
    with database(url) as engine, engine.connect() as conn:
        query = sa.select(sa.func.count()).where(conversations.c.app_id == app_id)
        return int(conn.execute(query.select_from(conversations)).scalar_one())


def count_participants(url: str, conversation_id: int) -> int:
    with database(url) as engine, engine.connect() as conn:
        query = sa.select(sa.func.count()).where(participants.c.conversation_id == conversation_id)
        return int(conn.execute(query.select_from(participants)).scalar_one())


def node_of(conversation_id: int) -> int:
    return (conversation_id >> SEQUENCE_BITS) & ((1 << NODE_BITS) - 1)


# --------------------------------------------------------------------------- concurrency


def run_together(
    count: int, make: Callable[[int], Sdk], action: str, body: Callable[[int], Any]
) -> list[Answer]:
    """``count`` threads, each with its own client, released at once by a barrier."""
    barrier = threading.Barrier(count, timeout=60)

    def one(index: int) -> Answer:
        client = make(index)
        try:
            barrier.wait()
            return client.call(action, body(index))
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def mixed_clients(host: str, tenant: Tenant) -> Callable[[int], Sdk]:
    """Even threads use volcengine, odd ones volcenginesdkcore. The latter without retries, so
    that a server error in a race is seen as one rather than papered over by a retry."""

    def make(index: int) -> Sdk:
        if index % 2:
            return CoreSdk(host, tenant.access_key, tenant.secret_key, retries=0)
        return VolcSdk(host, tenant.access_key, tenant.secret_key)

    return make


def one_conversation(answers: list[Answer]) -> int:
    """All answers succeeded and name one conversation; exactly one of them created it."""
    failed = [a for a in answers if not a.ok]
    assert not failed, failed[:3]
    results = [a.result for a in answers if a.result is not None]
    ids = {r["ConversationShortId"] for r in results}
    assert len(ids) == 1, f"{len(ids)} different conversations for one create"
    assert sum(1 for r in results if r["Exist"] is False) == 1
    assert sum(1 for r in results if r["Exist"] is True) == len(answers) - 1
    assert {r["ConversationInfo"]["ConversationShortId"] for r in results} == ids
    (conversation_id,) = ids
    return int(conversation_id)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=sorted(SDK_KINDS))
def sdk(request: pytest.FixtureRequest, server: LiveServer, tenant: Tenant) -> Iterator[Sdk]:
    client = SDK_KINDS[request.param](server.host, tenant.access_key, tenant.secret_key)
    yield client
    client.close()


def _no_limits(url: str, **extra: Any) -> Settings:
    return Settings(database_url=url, rate_limits=parse_rate_limits(NO_LIMITS), **extra)


# =========================================================================== 1. the happy paths


def test_create_single_group_and_live(sdk: Sdk, tenant: Tenant, database_url: str) -> None:
    made = ok(sdk, "CreateConversation", single(tenant, 10001, 10002))
    assert made["Exist"] is False
    info = made["ConversationInfo"]
    assert made["ConversationShortId"] == info["ConversationShortId"] > 0
    assert made["ConversationId"] == info["ConversationId"] == str(made["ConversationShortId"])
    assert info["AppId"] == tenant.app_id
    assert info["ConversationType"] == SINGLE
    assert (info["OwnerUserId"], info["CreatorUserId"], info["OtherUserId"]) == (
        10001,
        10001,
        10002,
    )
    assert info["MemberCount"] == 2
    assert info["Status"] == 0
    assert info["CreateTime"] == info["ModifyTime"]
    assert abs(info["CreateTime"] - time.time()) < 120  # seconds, not milliseconds

    team = ok(sdk, "CreateConversation", group(tenant, 10001, Name="team", Notice="hi"))
    team_info = team["ConversationInfo"]
    assert team["Exist"] is False
    assert team_info["ConversationType"] == GROUP
    assert (team_info["Name"], team_info["Notice"]) == ("team", "hi")
    assert (team_info["OwnerUserId"], team_info["CreatorUserId"]) == (10001, 10001)
    assert team_info["MemberCount"] == 1
    assert "OtherUserId" not in team_info

    live = ok(sdk, "CreateConversation", group(tenant, 10003, kind=LIVE, Name="stage"))
    assert live["Exist"] is False
    assert live["ConversationInfo"]["ConversationType"] == LIVE
    assert live["ConversationInfo"]["OwnerUserId"] == 10003

    ids = {made["ConversationShortId"], team["ConversationShortId"], live["ConversationShortId"]}
    assert len(ids) == 3
    assert count_conversations(database_url, tenant.app_id) == 3
    assert count_participants(database_url, made["ConversationShortId"]) == 2


def test_repeated_create_answers_exist_with_the_same_id(
    sdk: Sdk, tenant: Tenant, database_url: str
) -> None:
    first = ok(sdk, "CreateConversation", single(tenant, 20001, 20002))
    again = ok(sdk, "CreateConversation", single(tenant, 20001, 20002))
    swapped = ok(sdk, "CreateConversation", single(tenant, 20002, 20001))
    assert first["Exist"] is False
    assert again["Exist"] is True and swapped["Exist"] is True
    assert first["ConversationShortId"] == again["ConversationShortId"]
    assert first["ConversationShortId"] == swapped["ConversationShortId"]
    # The stored conversation comes back unchanged, not the one the repeat described.
    assert swapped["ConversationInfo"]["OwnerUserId"] == 20001
    assert swapped["ConversationInfo"]["OtherUserId"] == 20002

    keyed = ok(sdk, "CreateConversation", group(tenant, 20001, idempotent_id="g-1", Name="one"))
    repeat = ok(sdk, "CreateConversation", group(tenant, 20001, idempotent_id="g-1", Name="two"))
    assert (keyed["Exist"], repeat["Exist"]) == (False, True)
    assert repeat["ConversationShortId"] == keyed["ConversationShortId"]
    assert repeat["ConversationInfo"]["Name"] == "one"

    live = ok(sdk, "CreateConversation", group(tenant, 20001, kind=LIVE, idempotent_id="l-1"))
    live_again = ok(sdk, "CreateConversation", group(tenant, 20001, kind=LIVE, idempotent_id="l-1"))
    assert (live["Exist"], live_again["Exist"]) == (False, True)
    assert live_again["ConversationShortId"] == live["ConversationShortId"]

    # Groups without an IdempotentId always create.
    loose = [ok(sdk, "CreateConversation", group(tenant, 20001, Name="x")) for _ in range(2)]
    assert [r["Exist"] for r in loose] == [False, False]
    assert loose[0]["ConversationShortId"] != loose[1]["ConversationShortId"]
    assert count_conversations(database_url, tenant.app_id) == 5


def test_the_two_sdks_see_one_conversation(server: LiveServer, tenant: Tenant) -> None:
    volc = VolcSdk(server.host, tenant.access_key, tenant.secret_key)
    core = CoreSdk(server.host, tenant.access_key, tenant.secret_key)
    try:
        made = ok(volc, "CreateConversation", single(tenant, 30001, 30002))
        seen = ok(core, "CreateConversation", single(tenant, 30002, 30001))
        assert (made["Exist"], seen["Exist"]) == (False, True)
        assert seen["ConversationShortId"] == made["ConversationShortId"]
        keyed = ok(core, "CreateConversation", group(tenant, 30001, idempotent_id="shared"))
        again = ok(volc, "CreateConversation", group(tenant, 30001, idempotent_id="shared"))
        assert (keyed["Exist"], again["Exist"]) == (False, True)
        assert again["ConversationShortId"] == keyed["ConversationShortId"]
    finally:
        volc.close()
        core.close()


def test_modify_name_ext_and_refused_owner_transfer(sdk: Sdk, tenant: Tenant) -> None:
    made = ok(
        sdk,
        "CreateConversation",
        group(tenant, 40001, Name="before", Description="kept", Ext={"a": "1", "b": "2"}),
    )
    conversation_id = made["ConversationShortId"]
    answer = ok(
        sdk,
        "ModifyConversation",
        {
            "AppId": tenant.app_id,
            "ConversationCoreInfo": {
                "ConversationShortId": conversation_id,
                "Name": "after",
                "Ext": {"b": "3", "c": "4"},
            },
        },
    )
    assert answer == {}
    (info,) = batch_get(sdk, tenant, [conversation_id])
    assert info["Name"] == "after"
    assert info["Description"] == "kept"  # a partial update leaves absent fields alone
    assert info["Ext"] == {"a": "1", "b": "3", "c": "4"}  # merged per key, not replaced
    assert info["ModifyTime"] >= info["CreateTime"]

    refused = fail(
        sdk,
        "ModifyConversation",
        {
            "AppId": tenant.app_id,
            "ConversationCoreInfo": {
                "ConversationShortId": conversation_id,
                "OwnerUserId": 49999,
                "Name": "never",
            },
        },
    )
    assert refused.error is not None
    assert refused.error["Code"] == "ParticipantNotInConversation"
    if refused.status is not None:
        assert refused.status == 400
    (info,) = batch_get(sdk, tenant, [conversation_id])
    assert info["OwnerUserId"] == 40001
    assert info["Name"] == "after"  # a refused modify changes nothing at all

    pair = ok(sdk, "CreateConversation", single(tenant, 40001, 40002))
    single_refused = fail(
        sdk,
        "ModifyConversation",
        {
            "AppId": tenant.app_id,
            "ConversationCoreInfo": {
                "ConversationShortId": pair["ConversationShortId"],
                "OwnerUserId": 40002,
            },
        },
    )
    assert single_refused.error is not None
    assert single_refused.error["Code"] == "SingleConversationNotSupport"

    missing = fail(
        sdk,
        "ModifyConversation",
        {"AppId": tenant.app_id, "ConversationCoreInfo": {"ConversationShortId": 1, "Name": "x"}},
    )
    assert missing.error is not None and missing.error["Code"] == "ConversationNotFound"


def test_batch_get_with_and_without_member_count(
    sdk: Sdk, tenant: Tenant, server: LiveServer, database_url: str
) -> None:
    pair = ok(sdk, "CreateConversation", single(tenant, 50001, 50002))["ConversationShortId"]
    team = ok(sdk, "CreateConversation", group(tenant, 50001))["ConversationShortId"]
    stranger = new_tenant(database_url)
    theirs = type(sdk)(server.host, stranger.access_key, stranger.secret_key)
    try:
        foreign = ok(theirs, "CreateConversation", group(stranger, 50001))["ConversationShortId"]
    finally:
        theirs.close()
    unknown = 1

    for skip in (None, True):
        infos = batch_get(sdk, tenant, [team, unknown, foreign, pair, team], skip=skip)
        # Request order, duplicates collapsed, unknown and other apps' IDs left out.
        assert [i["ConversationShortId"] for i in infos] == [team, pair]
        assert all("MemberCount" not in i for i in infos), infos

    counted = batch_get(sdk, tenant, [pair, team], skip=False)
    assert [(i["ConversationShortId"], i["MemberCount"]) for i in counted] == [(pair, 2), (team, 1)]
    assert counted[0]["OtherUserId"] == 50002

    bad = fail(sdk, "BatchGetConversations", {"AppId": tenant.app_id, "ConversationShortId": [0]})
    assert bad.error is not None and bad.error["Code"] == "ConversationShortIdsHasInvalidElem"


def test_ids_beyond_2_53_survive_both_ways(sdk: Sdk, tenant: Tenant) -> None:
    made = ok(sdk, "CreateConversation", single(tenant, BEYOND_2_53, INT64_MAX))
    info = made["ConversationInfo"]
    assert info["OwnerUserId"] == BEYOND_2_53
    assert info["CreatorUserId"] == BEYOND_2_53
    assert info["OtherUserId"] == INT64_MAX
    assert info["OwnerUserIdStr"] == str(BEYOND_2_53)
    conversation_id = made["ConversationShortId"]
    assert made["ConversationId"] == str(conversation_id)

    (read,) = batch_get(sdk, tenant, [conversation_id], skip=False)
    assert read["ConversationShortId"] == conversation_id
    assert (read["OwnerUserId"], read["OtherUserId"]) == (BEYOND_2_53, INT64_MAX)

    # The neighbour that a float would round to is a different pair of users.
    rounded = ok(sdk, "CreateConversation", single(tenant, BEYOND_2_53 - 1, INT64_MAX))
    assert rounded["Exist"] is False
    assert rounded["ConversationShortId"] != conversation_id
    again = ok(sdk, "CreateConversation", single(tenant, INT64_MAX, BEYOND_2_53))
    assert again["Exist"] is True and again["ConversationShortId"] == conversation_id

    if sdk.name == "volcengine":
        answer = sdk.call(
            "BatchGetConversations",
            {"AppId": tenant.app_id, "ConversationShortId": [conversation_id]},
        )
        assert answer.text is not None
        assert f'"OwnerUserId": {BEYOND_2_53}' in answer.text


# =========================================================================== 2. documented errors


def test_wrong_secret_is_signature_does_not_match(
    server: LiveServer, tenant: Tenant, database_url: str
) -> None:
    body = single(tenant, 60001, 60002)
    volc = VolcSdk(server.host, tenant.access_key, tenant.secret_key + "x")
    # json() raises a bare Exception carrying the body.
    with pytest.raises(Exception) as raised:
        volc.service.json("CreateConversation", {}, json.dumps(body).encode())
    volc.close()
    (raw,) = raised.value.args
    error = json.loads(raw)["ResponseMetadata"]["Error"]
    assert (error["Code"], error["CodeN"]) == ("SignatureDoesNotMatch", 100010)

    core = CoreSdk(server.host, tenant.access_key, tenant.secret_key + "x")
    info = UniversalInfo(
        method="POST",
        service=SERVICE,
        version=VERSION,
        action="CreateConversation",
        content_type="application/json",
    )
    with pytest.raises(ApiException) as failed:
        core.api.do_call(info, body)
    core.close()
    assert failed.value.status == 401
    error = json.loads(failed.value.body)["ResponseMetadata"]["Error"]
    assert (error["Code"], error["CodeN"]) == ("SignatureDoesNotMatch", 100010)
    assert count_conversations(database_url, tenant.app_id) == 0


@pytest.mark.parametrize("kind", sorted(SDK_KINDS))
def test_documented_errors(kind: str, server: LiveServer, database_url: str) -> None:
    tenant = new_tenant(database_url)
    stranger = new_tenant(database_url)
    make = SDK_KINDS[kind]
    clients: list[Sdk] = []

    def client(access_key: str, secret_key: str) -> Sdk:
        clients.append(make(server.host, access_key, secret_key))
        return clients[-1]

    try:
        good = client(tenant.access_key, tenant.secret_key)
        cases: list[tuple[Sdk, dict[str, Any], str, int]] = [
            (
                client(tenant.access_key, tenant.secret_key + "x"),
                single(tenant, 1, 2),
                "SignatureDoesNotMatch",
                401,
            ),
            (
                client("AKLT" + "0" * 32, tenant.secret_key),
                single(tenant, 1, 2),
                "InvalidAccessKey",
                401,
            ),
            (good, single(stranger, 1, 2), "NoAuth", 400),
            (good, group(tenant, 1, kind=7), "InvalidParam", 400),
            (good, single(tenant, 1, None), "CreateSingleConversationNeedOtherParticipantId", 400),
            (good, single(tenant, 1, 1), "InvalidParam", 400),
            (good, {**single(tenant, 1, 2), "AppId": 2147483000}, "AppNotFound", 400),
        ]
        for who, body, code, status in cases:
            answer = fail(who, "CreateConversation", body)
            assert answer.error is not None
            assert answer.error["Code"] == code, (code, answer)
            assert answer.text is None or code in answer.text
            if kind == "volcenginesdkcore":
                assert answer.status == status, (code, answer)
        assert count_conversations(database_url, tenant.app_id) == 0
        assert count_conversations(database_url, stranger.app_id) == 0
    finally:
        for each in clients:
            each.close()


def test_malformed_json_through_volcengine(
    server: LiveServer, tenant: Tenant, database_url: str
) -> None:
    volc = VolcSdk(server.host, tenant.access_key, tenant.secret_key)
    try:
        broken = volc.call("CreateConversation", b'{"AppId": ' + str(tenant.app_id).encode() + b",")
        assert broken.error is not None and broken.error["Code"] == "JsonParsingError"
        not_object = volc.call("CreateConversation", b"[1, 2]")
        assert not_object.error is not None and not_object.error["Code"] == "InvalidParam"
        # The signature covered the raw bytes exactly: a valid body in the same client works.
        made = volc.call("CreateConversation", json.dumps(single(tenant, 1, 2)).encode())
        assert made.ok and made.result is not None and made.result["Exist"] is False
    finally:
        volc.close()
    assert count_conversations(database_url, tenant.app_id) == 1


def test_rate_limit_per_account(database_url: str) -> None:
    first, second = new_tenant(database_url), new_tenant(database_url)
    settings = Settings(
        database_url=database_url, rate_limits=parse_rate_limits("CreateConversation=5")
    )
    with LiveServer(settings) as live:

        def make(index: int) -> Sdk:
            if index % 2:
                # The default three retries, without the waits between them, so every attempt
                # falls into the same exhausted second.
                return CoreSdk(live.host, first.access_key, first.secret_key, backoff=False)
            return VolcSdk(live.host, first.access_key, first.secret_key)

        burst = run_together(20, make, "CreateConversation", lambda i: group(first, 70001 + i))
        made = [a for a in burst if a.ok]
        limited = [a for a in burst if not a.ok]
        assert 1 <= len(made) <= 10, burst
        assert len(limited) >= 10
        for answer in limited:
            assert answer.error is not None
            assert answer.error["Code"] == "FlowLimitExceeded", answer
            assert answer.error["CodeN"] != 0
        core_limited = [a for a in limited if a.status is not None]
        assert core_limited, "no volcenginesdkcore call ended limited"
        assert all(a.status == 429 for a in core_limited)
        # Rejected calls (and the SDK's retries of them) created nothing.
        assert count_conversations(database_url, first.app_id) == len(made)

        other = VolcSdk(live.host, second.access_key, second.secret_key)
        reader = CoreSdk(live.host, first.access_key, first.secret_key, retries=0)
        try:
            theirs = [ok(other, "CreateConversation", group(second, 71001)) for _ in range(5)]
            assert all(r["Exist"] is False for r in theirs)
            ids = [a.result["ConversationShortId"] for a in made if a.result is not None]
            infos = batch_get(reader, first, ids)
            assert sorted(i["ConversationShortId"] for i in infos) == sorted(ids)
        finally:
            other.close()
            reader.close()
    assert count_conversations(database_url, second.app_id) == 5


# =========================================================================== 3. concurrency


def test_concurrent_identical_single_creates_make_one(
    server: LiveServer, tenant: Tenant, database_url: str
) -> None:
    answers = run_together(
        CONCURRENCY,
        mixed_clients(server.host, tenant),
        "CreateConversation",
        lambda i: single(tenant, 80001, 80002),
    )
    conversation_id = one_conversation(answers)
    assert count_conversations(database_url, tenant.app_id) == 1
    assert count_participants(database_url, conversation_id) == 2


def test_concurrent_group_creates_with_one_idempotent_id_make_one(
    server: LiveServer, tenant: Tenant, database_url: str
) -> None:
    answers = run_together(
        CONCURRENCY,
        mixed_clients(server.host, tenant),
        "CreateConversation",
        lambda i: group(tenant, 80001, idempotent_id="once", Name=f"try-{i}"),
    )
    conversation_id = one_conversation(answers)
    assert count_conversations(database_url, tenant.app_id) == 1
    names = {a.result["ConversationInfo"]["Name"] for a in answers if a.result is not None}
    assert len(names) == 1  # every answer describes the one stored conversation
    assert count_participants(database_url, conversation_id) == 1


def test_concurrent_group_creates_without_idempotent_id_make_fifty(
    server: LiveServer, tenant: Tenant, database_url: str
) -> None:
    answers = run_together(
        CONCURRENCY,
        mixed_clients(server.host, tenant),
        "CreateConversation",
        lambda i: group(tenant, 80001, Name=f"g-{i}"),
    )
    assert all(a.ok for a in answers), [a for a in answers if not a.ok][:3]
    results = [a.result for a in answers if a.result is not None]
    assert all(r["Exist"] is False for r in results)
    assert len({r["ConversationShortId"] for r in results}) == CONCURRENCY
    assert count_conversations(database_url, tenant.app_id) == CONCURRENCY


# =========================================================================== 4. restarts


def test_idempotency_survives_a_restart(database_url: str) -> None:
    tenant = new_tenant(database_url)
    with LiveServer(_no_limits(database_url)) as before:
        volc = VolcSdk(before.host, tenant.access_key, tenant.secret_key)
        try:
            pair = ok(volc, "CreateConversation", single(tenant, 90001, 90002))
            keyed = ok(volc, "CreateConversation", group(tenant, 90001, idempotent_id="k"))
        finally:
            volc.close()
    with LiveServer(_no_limits(database_url)) as after:
        core = CoreSdk(after.host, tenant.access_key, tenant.secret_key)
        try:
            pair_again = ok(core, "CreateConversation", single(tenant, 90002, 90001))
            keyed_again = ok(core, "CreateConversation", group(tenant, 90001, idempotent_id="k"))
            fresh = ok(core, "CreateConversation", group(tenant, 90001))
        finally:
            core.close()
    assert (pair["Exist"], pair_again["Exist"]) == (False, True)
    assert pair_again["ConversationShortId"] == pair["ConversationShortId"]
    assert (keyed["Exist"], keyed_again["Exist"]) == (False, True)
    assert keyed_again["ConversationShortId"] == keyed["ConversationShortId"]
    assert fresh["ConversationShortId"] not in {
        pair["ConversationShortId"],
        keyed["ConversationShortId"],
    }
    assert count_conversations(database_url, tenant.app_id) == 3


# =========================================================================== 5. processes


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    base_url: str
    host: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")


@contextmanager
def convhub_serve(
    args: Sequence[str], workdir: Path, *, ready: Callable[[Served], bool] | None = None
) -> Iterator[Served]:
    """``convhub serve`` as a child process, up and answering /healthz; stopped at the end."""
    port = free_port()
    stdout, stderr = workdir / "stdout.txt", workdir / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*convhub_command(), "serve", "--port", str(port), *args],
            cwd=workdir,
            env=child_env(),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    served = Served(process, f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", stdout, stderr)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as http:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"convhub serve exited with {process.returncode}:\n{served.log()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"convhub serve did not become ready:\n{served.log()}")
                try:
                    healthy = http.get(served.base_url + "/healthz").status_code == 200
                except httpx.TransportError:
                    healthy = False
                if healthy and (ready is None or ready(served)):
                    break
                time.sleep(0.05)
        yield served
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: it and its workers only
            process.wait(timeout=10)
    else:
        process.wait()


def assert_stopped_cleanly(served: Served, *, workers: int) -> None:
    """SIGTERM ended it the graceful way: every worker ran its shutdown, nothing blew up.
    (uvicorn re-raises the signal after a single-process shutdown, hence -SIGTERM.)"""
    log = served.log()
    assert served.process.returncode in (0, -signal.SIGTERM), (served.process.returncode, log)
    assert log.count("Application shutdown complete") == workers, log
    assert "Traceback" not in log and "ERROR" not in log, log


def _leased_nodes(url: str) -> dict[str, int]:
    """Lease owner -> the ID generator node it holds (one per server process)."""
    with database(url) as engine, engine.connect() as conn:
        rows = conn.execute(sa.select(node_leases.c.owner, node_leases.c.node)).all()
        return {owner: int(node) for owner, node in rows}


def test_two_worker_processes_create_once(tmp_path: Path) -> None:
    """On PostgreSQL (serve refuses several processes on one SQLite file)."""
    with required_postgres() as database_url:
        _two_workers_create_once(database_url, tmp_path)


def _two_workers_create_once(database_url: str, tmp_path: Path) -> None:
    tenant = new_tenant(database_url)  # before the start: the bootstrap only runs on an empty DB
    leased_before = set(_leased_nodes(database_url))

    def worker_nodes() -> set[int]:
        return {n for owner, n in _leased_nodes(database_url).items() if owner not in leased_before}

    args = ["--workers", "2", "--database-url", database_url, "--no-access-log"]
    args += ["--rate-limits", "*=100000"]
    with convhub_serve(args, tmp_path, ready=lambda _: len(worker_nodes()) == 2) as served:
        make = mixed_clients(served.host, tenant)
        # First, that both processes take creates: every conversation ID names its minter. The
        # kernel hands connections to whichever process accepts first, so on a busy machine one
        # round may all go to one: a few rounds, until both have minted.
        minters: set[int] = set()
        rounds = 0
        while rounds < 5 and minters != worker_nodes():
            rounds += 1
            loose = run_together(
                CONCURRENCY, make, "CreateConversation", lambda i: group(tenant, 11001, Name=str(i))
            )
            assert all(a.ok for a in loose), [a for a in loose if not a.ok][:3]
            loose_ids = {a.result["ConversationShortId"] for a in loose if a.result is not None}
            assert len(loose_ids) == CONCURRENCY
            minters |= {node_of(i) for i in loose_ids}
        assert minters == worker_nodes()

        pair = run_together(
            CONCURRENCY, make, "CreateConversation", lambda i: single(tenant, 11001, 11002)
        )
        keyed = run_together(
            CONCURRENCY,
            make,
            "CreateConversation",
            lambda i: group(tenant, 11001, idempotent_id="across-processes"),
        )
        pair_id, keyed_id = one_conversation(pair), one_conversation(keyed)
        assert pair_id != keyed_id
        assert count_conversations(database_url, tenant.app_id) == rounds * CONCURRENCY + 2
        assert count_participants(database_url, pair_id) == 2
        assert count_participants(database_url, keyed_id) == 1
    assert_stopped_cleanly(served, workers=2)


def test_a_change_through_one_process_is_read_at_once_through_another(tmp_path: Path) -> None:
    """Two ``convhub serve`` on one PostgreSQL, each keeping the conversations it reads and
    trusting them while the other's write clock stands still: every rename answered by one is
    in the next BatchGet through the other, both right after it and after a pause long enough
    for the reader to trust what it kept again."""
    with required_postgres() as url, ExitStack() as stack:
        tenant = new_tenant(url)  # before the start: the bootstrap only runs on an empty DB
        args = ["--database-url", url, "--no-access-log", "--rate-limits", "*=100000"]
        hosts = []
        for name in ("writes", "reads"):
            (tmp_path / name).mkdir()
            hosts.append(stack.enter_context(convhub_serve(args, tmp_path / name)).host)
        writer, reader = (VolcSdk(host, tenant.access_key, tenant.secret_key) for host in hosts)
        made = [ok(writer, "CreateConversation", group(tenant, 12001, Name="0")) for _ in range(3)]
        ids = [m["ConversationShortId"] for m in made]
        for round_ in range(1, 9):
            assert [i["Name"] for i in batch_get(reader, tenant, ids)] == [str(round_ - 1)] * 3
            if round_ % 2:
                time.sleep(QUIET * 1.5)  # the writer's clock stands still: trusted again
                batch_get(reader, tenant, ids)  # kept again, after the reader forgot all
            for conversation_id in ids[round_ % 3 :] + ids[: round_ % 3]:
                body = {"ConversationShortId": conversation_id, "Name": str(round_)}
                ok(writer, "ModifyConversation", {"AppId": tenant.app_id,
                                                  "ConversationCoreInfo": body})  # fmt: skip
        assert [i["Name"] for i in batch_get(reader, tenant, ids)] == ["8"] * 3


# =========================================================================== 6. shared limits


def test_rate_limit_is_shared_through_redis(database_url: str) -> None:
    # Redis must be there: a limiter that cannot count is a failure, never a skip.
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        assert client.ping()
    finally:
        client.close()
    tenant = new_tenant(database_url)  # a fresh account: no counts left over in Redis
    settings = Settings(
        database_url=database_url,
        redis_url=REDIS_URL,
        rate_limits=parse_rate_limits("CreateConversation=10"),
    )
    with LiveServer(settings) as one, LiveServer(settings) as two:
        hosts = [one.host, two.host]

        def make(index: int) -> Sdk:
            return VolcSdk(hosts[index % 2], tenant.access_key, tenant.secret_key)

        started = time.monotonic()
        answers = run_together(30, make, "CreateConversation", lambda i: group(tenant, 12001))
        elapsed = time.monotonic() - started
    made = [a for a in answers if a.ok]
    limited = [a for a in answers if not a.ok]
    assert all(a.error is not None and a.error["Code"] == "FlowLimitExceeded" for a in limited)
    # Counted apart, each server would admit 10 of its 15; shared, 10 pass in all (a little
    # more if the burst straddles a second of the sliding window).
    assert 1 <= len(made) <= 12, (len(made), elapsed)
    assert count_conversations(database_url, tenant.app_id) == len(made)


# =========================================================================== 7. the first minute


def test_quick_start_first_call(tmp_path: Path) -> None:
    def printed(served: Served) -> bool:
        return "SecretKey" in served.output()

    with convhub_serve([], tmp_path, ready=printed) as served:
        output = served.output()
        found = {
            name: re.search(rf"^\s*{name}\s+(\S+)\s*$", output, re.MULTILINE)
            for name in ("AppId", "AccessKey", "SecretKey")
        }
        assert all(found.values()), output
        app_id = int(found["AppId"].group(1))  # type: ignore[union-attr]
        access_key = found["AccessKey"].group(1)  # type: ignore[union-attr]
        secret_key = found["SecretKey"].group(1)  # type: ignore[union-attr]

        # The README's "Your first call", with the printed values and this server's address.
        actions = ["CreateConversation", "ModifyConversation", "BatchGetConversations"]
        api = {
            a: ApiInfo("POST", "/", {"Action": a, "Version": "2020-12-01"}, {}, {}) for a in actions
        }
        info = ServiceInfo(
            served.host,
            {"Accept": "application/json"},
            Credentials(access_key, secret_key, "rtc", "cn-north-1"),
            5,
            30,
            scheme="http",
        )
        im = Service(info, api)
        im.set_ak(access_key)
        im.set_sk(secret_key)
        body = {
            "AppId": app_id,
            "OwnerUserId": 10001,
            "OtherUserId": 10002,
            "ConversationCoreInfo": {"ConversationType": 1, "Name": "hello"},
        }
        try:
            text = im.json("CreateConversation", {}, json.dumps(body).encode())
        finally:
            im.session.close()
    payload = json.loads(text)
    assert "Error" not in payload["ResponseMetadata"], payload
    assert payload["Result"]["Exist"] is False
    assert payload["Result"]["ConversationInfo"]["AppId"] == app_id
    assert payload["Result"]["ConversationInfo"]["Name"] == "hello"
    assert (tmp_path / "convhub.db").exists()  # the default database, next to the newcomer

    log, output = served.log(), served.output()
    # The request log (convhub's, not uvicorn's) goes to stdout, everything else to stderr.
    assert re.search(r"volc CreateConversation 200 ok \S+ms account=\d+ request_id=\w+", output)
    assert "Application startup complete" in log
    assert secret_key not in log  # no log line carries the secret ...
    assert output.count(secret_key) == 1  # ... it is shown once, in the first-start banner
    assert_stopped_cleanly(served, workers=1)

    # A second start on the same file creates nothing and shows no secret again.
    (tmp_path / "second").mkdir()
    url = f"sqlite:///{tmp_path / 'convhub.db'}"
    with convhub_serve(["--database-url", url], tmp_path / "second") as again:
        pass
    assert secret_key not in again.output() and "SecretKey" not in again.output()
    assert secret_key not in again.log()
