"""Raw-HTTP contract of the Volcengine dialect: envelopes, result shapes, error codes.

Every request goes over a socket to a live server and, unless the test is about signing, carries a
real signature. Assertions pin wire facts that the official clients depend on (JSON types, exact
codes and statuses, the raw digits of 64-bit IDs); see reference/volcengine-im.md §2, §3, §5-§7.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import Engine, func, select

from convhub.config import Settings, parse_rate_limits
from convhub.dialects.volc.errors import VOLC_ERRORS
from convhub.domain import rules
from convhub.domain.models import EntityStatus
from convhub.errors import ErrorCode
from convhub.store.engine import create_database_engine
from convhub.store.tables import conversations
from convhub.wire.signing import sign_request
from tests import admin
from tests.support import (
    NO_LIMITS,
    VERSION,
    LiveServer,
    Tenant,
    VolcClient,
    new_tenant,
    signed_headers,
)

CREATE = "CreateConversation"
MODIFY = "ModifyConversation"
BATCH_GET = "BatchGetConversations"
SINGLE, GROUP, LIVE = 1, 2, 100
OWNER, OTHER = 10001, 10002
TWO_53 = 1 << 53
INT32_MAX = (1 << 31) - 1
INT64_MAX = (1 << 63) - 1
UNKNOWN_APP_ID = 2_147_000_000
METADATA_KEYS = {"RequestId", "Action", "Version", "Service", "Region"}
RESULT_KEYS = {"ConversationShortId", "ConversationId", "Exist", "ConversationInfo"}
# CodeN of the gateway codes, from the Volcengine common error pages (reference §2.4).
DOCUMENTED_CODE_N = {
    "MissingParameter": 100002,
    "MissingRequestInfo": 100004,
    "InvalidTimestamp": 100006,
    "ServiceNotFound": 100007,
    "InvalidActionOrVersion": 100008,
    "InvalidAccessKey": 100009,
    "SignatureDoesNotMatch": 100010,
    "AccessDenied": 100013,
    "InternalError": 100014,
}
WIRE_CODE_N = {code: code_n for code, code_n, _status in VOLC_ERRORS.values()}

Body = dict[str, Any]


# --- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


@pytest.fixture
def count(engine: Engine) -> Callable[[int], int]:
    """Rows in ``conversations`` for an app, read straight from the database."""

    def count(app_id: int) -> int:
        with engine.connect().execution_options(convhub_readonly=True) as conn:
            statement = (
                select(func.count())
                .select_from(conversations)
                .where(conversations.c.app_id == app_id)
            )
            return int(conn.execute(statement).scalar_one())

    return count


@pytest.fixture(scope="module")
def uncached_server(database_url: str) -> Iterator[LiveServer]:
    """A server whose access cache expires at once: a disabled app or key is refused at once."""
    settings = Settings(
        database_url=database_url,
        rate_limits=parse_rate_limits(NO_LIMITS),
        access_cache_seconds=0,
    )
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
def uncached(uncached_server: LiveServer, tenant: Tenant) -> Iterator[VolcClient]:
    client = VolcClient(uncached_server, tenant)
    yield client
    client.close()


def group(app_id: int, owner: int = OWNER, **core: Any) -> Body:
    return {
        "AppId": app_id,
        "OwnerUserId": owner,
        "ConversationCoreInfo": {"ConversationType": GROUP, **core},
    }


def single(app_id: int, owner: int = OWNER, other: int = OTHER, **fields: Any) -> Body:
    return {
        "AppId": app_id,
        "OwnerUserId": owner,
        "OtherUserId": other,
        "ConversationCoreInfo": {"ConversationType": SINGLE},
        **fields,
    }


def modify(app_id: int, conversation_id: int, **core: Any) -> Body:
    return {
        "AppId": app_id,
        "ConversationCoreInfo": {"ConversationShortId": conversation_id, **core},
    }


def batch_get(app_id: int, ids: list[Any], **fields: Any) -> Body:
    return {"AppId": app_id, "ConversationShortId": ids, **fields}


def post(
    volc: VolcClient,
    query: dict[str, str],
    body: bytes,
    *,
    tenant: Tenant | None = None,
    now: float | None = None,
    method: str = "POST",
) -> httpx.Response:
    """A request with any query, signed for exactly that query and body."""
    headers = signed_headers(tenant or volc.tenant, volc.server.host, query, body, now=now)
    return volc.http.request(method, "/", params=query, content=body, headers=headers)


def expect_ok(response: httpx.Response, action: str) -> Body:
    """The Result of a success, after checking the whole envelope."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert set(payload) == {"ResponseMetadata", "Result"}, payload
    metadata = payload["ResponseMetadata"]
    assert set(metadata) == METADATA_KEYS, metadata  # no Error key, not even null
    assert type(metadata["RequestId"]) is str and metadata["RequestId"]
    assert metadata["Action"] == action
    assert metadata["Version"] == VERSION
    assert metadata["Service"] == "rtc"
    assert metadata["Region"] == "cn-north-1"
    result = payload["Result"]
    assert type(result) is dict
    return result


def expect_error(response: httpx.Response, status: int, code: str) -> Body:
    """The Error of a failure, after checking status, envelope and the absence of Result."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    payload = response.json()
    assert set(payload) == {"ResponseMetadata"}, payload  # no Result on failure
    metadata = payload["ResponseMetadata"]
    assert set(metadata) == {*METADATA_KEYS, "Error"}, metadata
    assert type(metadata["RequestId"]) is str and metadata["RequestId"]
    assert metadata["Service"] == "rtc"
    assert metadata["Region"] == "cn-north-1"
    error = metadata["Error"]
    assert set(error) == {"CodeN", "Code", "Message"}, error
    assert error["Code"] == code, error
    # The Go SDK reports a failure on a 2xx only if CodeN != 0, and decodes it as an integer.
    assert type(error["CodeN"]) is int and error["CodeN"] > 0, error
    assert error["CodeN"] == DOCUMENTED_CODE_N.get(code, WIRE_CODE_N[code]), error
    assert type(error["Message"]) is str and error["Message"]
    return dict(error)


def create(volc: VolcClient, body: Body) -> Body:
    return expect_ok(volc.call(CREATE, body), CREATE)


def create_id(volc: VolcClient, body: Body) -> int:
    conversation_id = create(volc, body)["ConversationShortId"]
    assert type(conversation_id) is int
    return conversation_id


def get_infos(volc: VolcClient, ids: list[Any], **fields: Any) -> list[Body]:
    result = expect_ok(
        volc.call(BATCH_GET, batch_get(volc.tenant.app_id, ids, **fields)), BATCH_GET
    )
    assert set(result) == {"ConversationCoreInfos"}
    infos = result["ConversationCoreInfos"]
    assert type(infos) is list
    return infos


def get_info(volc: VolcClient, conversation_id: int) -> Body:
    (info,) = get_infos(volc, [conversation_id])
    return info


def raw_int_field(text: str, name: str) -> list[str]:
    """The digits of every ``"name": <integer>`` in a raw JSON text."""
    return re.findall(rf'"{name}"\s*:\s*(-?\d+)(?![\d.eE])', text)


def second_app(engine: Engine, tenant: Tenant) -> int:
    """Another app of the tenant's account: the tenant's key may use it."""
    return admin.create_app(engine, tenant.account)


# --- the success envelope -------------------------------------------------------------------------


def test_create_answers_the_full_success_envelope(volc: VolcClient) -> None:
    result = expect_ok(volc.call(CREATE, group(volc.tenant.app_id)), CREATE)
    assert set(result) == RESULT_KEYS


def test_modify_answers_an_empty_result_object(volc: VolcClient) -> None:
    conversation_id = create_id(volc, group(volc.tenant.app_id))
    response = volc.call(MODIFY, modify(volc.tenant.app_id, conversation_id, Name="x"))
    assert expect_ok(response, MODIFY) == {}
    assert response.json()["Result"] == {}


def test_batch_get_answers_the_envelope_with_its_own_action(volc: VolcClient) -> None:
    conversation_id = create_id(volc, group(volc.tenant.app_id))
    response = volc.call(BATCH_GET, batch_get(volc.tenant.app_id, [conversation_id]))
    assert set(expect_ok(response, BATCH_GET)) == {"ConversationCoreInfos"}


def test_request_ids_are_unique_across_successes_and_errors(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    responses = [volc.call(CREATE, group(app_id)) for _ in range(5)]
    responses += [volc.call(CREATE, {"AppId": "x"}) for _ in range(5)]
    responses += [volc.call("NoSuchAction", {}) for _ in range(5)]
    ids = [r.json()["ResponseMetadata"]["RequestId"] for r in responses]
    assert all(type(i) is str and i for i in ids)
    assert len(set(ids)) == len(ids), ids


# --- CreateConversation result --------------------------------------------------------------------


def test_create_group_result_fields_and_json_types(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    before = time.time()
    response = volc.call(
        CREATE,
        group(
            app_id,
            Name="Team",
            AvatarUrl="http://a.example/x.png",
            Description="desc",
            Notice="notice",
            Ext={"k": "v"},
        ),
    )
    result = expect_ok(response, CREATE)
    after = time.time()
    conversation_id = result["ConversationShortId"]
    assert type(conversation_id) is int
    assert conversation_id > TWO_53  # beyond float precision: must never pass through a double
    assert result["ConversationId"] == str(conversation_id)
    assert result["Exist"] is False
    info = result["ConversationInfo"]
    assert info["ConversationShortId"] == conversation_id
    assert info["ConversationId"] == str(conversation_id)
    assert type(info["AppId"]) is int and info["AppId"] == app_id
    assert type(info["InboxType"]) is int and info["InboxType"] == 0
    assert type(info["ConversationType"]) is int and info["ConversationType"] == GROUP
    assert info["Name"] == "Team"
    assert info["AvatarUrl"] == "http://a.example/x.png"
    assert info["Description"] == "desc"
    assert info["Notice"] == "notice"
    assert info["Ext"] == {"k": "v"}
    assert type(info["OwnerUserId"]) is int and info["OwnerUserId"] == OWNER
    assert type(info["CreatorUserId"]) is int and info["CreatorUserId"] == OWNER
    assert type(info["Status"]) is int and info["Status"] == 0
    for name in ("CreateTime", "ModifyTime"):
        value = info[name]
        assert type(value) is int, name  # seconds as an integer, never a float
        assert int(before) - 1 <= value <= after + 1, (name, value)  # seconds, not milliseconds
    assert info["CreateTime"] == info["ModifyTime"]
    assert type(info["MemberCount"]) is int and info["MemberCount"] == 1
    assert type(info["OnlineCount"]) is int and info["OnlineCount"] == 0
    assert "OtherUserId" not in info
    assert "OtherUserIdStr" not in info
    assert raw_int_field(response.text, "ConversationShortId") == [str(conversation_id)] * 2


def test_create_group_without_optional_fields_has_empty_strings_and_ext_object(
    volc: VolcClient,
) -> None:
    info = create(volc, group(volc.tenant.app_id))["ConversationInfo"]
    assert info["Ext"] == {}
    for name in ("Name", "AvatarUrl", "Description", "Notice"):
        assert info[name] == "", name


def test_create_single_chat_result(volc: VolcClient) -> None:
    result = create(volc, single(volc.tenant.app_id))
    info = result["ConversationInfo"]
    assert result["Exist"] is False
    assert info["ConversationType"] == SINGLE
    assert info["MemberCount"] == 2
    assert type(info["OtherUserId"]) is int and info["OtherUserId"] == OTHER
    assert info["OwnerUserId"] == OWNER
    assert info["CreatorUserId"] == OWNER
    assert info["OnlineCount"] == 0
    assert info["Status"] == 0


def test_group_ignores_other_user_id(volc: VolcClient) -> None:
    body = group(volc.tenant.app_id)
    body["OtherUserId"] = OTHER
    info = create(volc, body)["ConversationInfo"]
    assert "OtherUserId" not in info
    assert info["MemberCount"] == 1


def test_live_group_result(volc: VolcClient) -> None:
    body = group(volc.tenant.app_id)
    body["ConversationCoreInfo"]["ConversationType"] = LIVE
    info = create(volc, body)["ConversationInfo"]
    assert info["ConversationType"] == LIVE
    assert info["MemberCount"] == 1
    assert info["OnlineCount"] == 0
    assert "OtherUserId" not in info


def test_single_chat_exists_on_repeat(volc: VolcClient) -> None:
    first = create(volc, single(volc.tenant.app_id))
    second = create(volc, single(volc.tenant.app_id))
    assert first["Exist"] is False
    assert second["Exist"] is True
    assert second["ConversationShortId"] == first["ConversationShortId"]
    assert second["ConversationId"] == first["ConversationId"]
    assert second["ConversationInfo"] == first["ConversationInfo"]


@pytest.mark.parametrize("owner", [TWO_53 + 1, INT64_MAX])
def test_owner_ids_beyond_2_53_round_trip_exactly(volc: VolcClient, owner: int) -> None:
    response = volc.call(CREATE, group(volc.tenant.app_id, owner=owner))
    info = expect_ok(response, CREATE)["ConversationInfo"]
    assert raw_int_field(response.text, "OwnerUserId") == [str(owner)]
    assert raw_int_field(response.text, "CreatorUserId") == [str(owner)]
    assert info["OwnerUserId"] == owner
    fetched = volc.call(BATCH_GET, batch_get(volc.tenant.app_id, [info["ConversationShortId"]]))
    assert raw_int_field(fetched.text, "OwnerUserId") == [str(owner)]


def test_conversation_id_is_exact_and_identical_in_create_and_batch_get(volc: VolcClient) -> None:
    created = volc.call(CREATE, single(volc.tenant.app_id))
    conversation_id = expect_ok(created, CREATE)["ConversationShortId"]
    assert conversation_id > TWO_53
    fetched = volc.call(BATCH_GET, batch_get(volc.tenant.app_id, [conversation_id]))
    expect_ok(fetched, BATCH_GET)
    digits = str(conversation_id)
    assert raw_int_field(created.text, "ConversationShortId") == [digits, digits]
    assert raw_int_field(fetched.text, "ConversationShortId") == [digits]
    assert f'"ConversationId":"{digits}"' in fetched.text.replace(" ", "")


# --- *Str twins -----------------------------------------------------------------------------------


def test_non_numeric_owner_str_gives_zero_owner_user_id(volc: VolcClient) -> None:
    body = group(volc.tenant.app_id)
    del body["OwnerUserId"]
    body["OwnerUserIdStr"] = "abc"
    info = create(volc, body)["ConversationInfo"]
    assert info["OwnerUserId"] == 0
    assert info["OwnerUserIdStr"] == "abc"
    assert info["CreatorUserId"] == 0
    assert info["CreatorUserIdStr"] == "abc"


def test_non_empty_twin_wins_over_the_integer(volc: VolcClient) -> None:
    body = group(volc.tenant.app_id, owner=5)
    body["OwnerUserIdStr"] = "abc"
    info = create(volc, body)["ConversationInfo"]
    assert info["OwnerUserIdStr"] == "abc"
    assert info["OwnerUserId"] == 0


def test_sdk_style_zero_integer_with_twin_uses_the_twin(volc: VolcClient) -> None:
    # The Go SDK always sends OwnerUserId, as 0 when the caller only set the string twin.
    body = single(volc.tenant.app_id, owner=0, other=0, OwnerUserIdStr="u-1", OtherUserIdStr="u-2")
    info = create(volc, body)["ConversationInfo"]
    assert info["OwnerUserIdStr"] == "u-1"
    assert info["OtherUserIdStr"] == "u-2"
    assert info["OwnerUserId"] == 0
    assert info["OtherUserId"] == 0


def test_integer_and_string_ids_name_the_same_user(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    first = create(volc, single(app_id, owner=OWNER, other=OTHER))
    body = single(app_id, owner=0, other=0, OwnerUserIdStr=str(OTHER), OtherUserIdStr=str(OWNER))
    second = create(volc, body)
    mixed = create(volc, single(app_id, owner=OTHER, other=0, OtherUserIdStr=str(OWNER)))
    assert first["Exist"] is False
    assert second["Exist"] is True
    assert mixed["Exist"] is True
    assert second["ConversationShortId"] == first["ConversationShortId"]
    assert mixed["ConversationShortId"] == first["ConversationShortId"]


def test_single_chat_with_oneself_via_twin_is_refused(volc: VolcClient) -> None:
    body = single(volc.tenant.app_id, owner=OWNER, other=0, OtherUserIdStr=str(OWNER))
    expect_error(volc.call(CREATE, body), 400, "InvalidParam")


# --- idempotency (seed 004) -----------------------------------------------------------------------


def test_single_chat_is_keyed_by_the_pair_in_either_order(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    first = create(volc, single(app_id, owner=OWNER, other=OTHER))
    reverse = create(volc, single(app_id, owner=OTHER, other=OWNER))
    assert reverse["Exist"] is True
    assert reverse["ConversationShortId"] == first["ConversationShortId"]
    # The stored conversation is answered as it is: the first caller stays the owner.
    assert reverse["ConversationInfo"]["OwnerUserId"] == OWNER
    other_pair = create(volc, single(app_id, owner=OWNER, other=OTHER + 1))
    assert other_pair["Exist"] is False
    assert other_pair["ConversationShortId"] != first["ConversationShortId"]


def test_idempotent_id_wins_over_the_pair(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    by_pair = create(volc, single(app_id))
    keyed_body = single(app_id, IdempotentId="k-1")
    keyed_body["ConversationCoreInfo"]["Name"] = "first"
    keyed_body["ConversationCoreInfo"]["Ext"] = {"a": "1"}
    keyed = create(volc, keyed_body)
    assert keyed["Exist"] is False
    assert keyed["ConversationShortId"] != by_pair["ConversationShortId"]

    again_body = single(app_id, IdempotentId="k-1")
    again_body["ConversationCoreInfo"]["Name"] = "second"
    again_body["ConversationCoreInfo"]["Ext"] = {"b": "2"}
    again = create(volc, again_body)
    assert again["Exist"] is True
    assert again["ConversationShortId"] == keyed["ConversationShortId"]
    assert again["ConversationInfo"] == keyed["ConversationInfo"]
    assert again["ConversationInfo"]["Name"] == "first"
    stored = get_info(volc, keyed["ConversationShortId"])
    assert stored["Name"] == "first"
    assert stored["Ext"] == {"a": "1"}
    # Without an IdempotentId the pair still finds its own single chat.
    assert create(volc, single(app_id))["ConversationShortId"] == by_pair["ConversationShortId"]


def test_group_without_idempotent_id_always_creates(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    app_id = volc.tenant.app_id
    first = create(volc, group(app_id, Name="same"))
    second = create(volc, group(app_id, Name="same"))
    assert first["Exist"] is False
    assert second["Exist"] is False
    assert first["ConversationShortId"] != second["ConversationShortId"]
    assert count(app_id) == 2


def test_group_with_idempotent_id_exists_on_repeat(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    app_id = volc.tenant.app_id
    first = create(volc, {**group(app_id, Name="a"), "IdempotentId": "g-1"})
    second = create(volc, {**group(app_id, Name="b"), "IdempotentId": "g-1"})
    assert second["Exist"] is True
    assert second["ConversationShortId"] == first["ConversationShortId"]
    assert second["ConversationInfo"]["Name"] == "a"
    assert count(app_id) == 1


def test_inbox_type_isolates_conversations(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    inbox0 = create(volc, single(app_id))
    inbox1 = create(volc, single(app_id, InboxType=1))
    assert inbox1["Exist"] is False
    assert inbox1["ConversationShortId"] != inbox0["ConversationShortId"]
    assert inbox1["ConversationInfo"]["InboxType"] == 1
    again = create(volc, single(app_id, InboxType=1))
    assert again["Exist"] is True
    assert again["ConversationShortId"] == inbox1["ConversationShortId"]
    keyed0 = create(volc, {**group(app_id), "IdempotentId": "same"})
    keyed1 = create(volc, {**group(app_id), "IdempotentId": "same", "InboxType": 1})
    assert keyed1["Exist"] is False
    assert keyed1["ConversationShortId"] != keyed0["ConversationShortId"]


def test_same_idempotent_id_in_another_app_is_another_conversation(
    volc: VolcClient, engine: Engine
) -> None:
    other_app = second_app(engine, volc.tenant)
    here = create(volc, {**group(volc.tenant.app_id), "IdempotentId": "shared"})
    there = create(volc, {**group(other_app), "IdempotentId": "shared"})
    assert there["Exist"] is False
    assert there["ConversationShortId"] != here["ConversationShortId"]
    assert there["ConversationInfo"]["AppId"] == other_app
    pair_here = create(volc, single(volc.tenant.app_id))
    pair_there = create(volc, single(other_app))
    assert pair_there["Exist"] is False
    assert pair_there["ConversationShortId"] != pair_here["ConversationShortId"]


# --- ModifyConversation ---------------------------------------------------------------------------


def test_modify_changes_only_the_sent_fields(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    core: Body = {
        "Name": "n",
        "AvatarUrl": "http://a",
        "Description": "d",
        "Notice": "old",
        "Ext": {"k": "v"},
    }
    conversation_id = create_id(volc, group(app_id, **core))
    expect_ok(volc.call(MODIFY, modify(app_id, conversation_id, Notice="new")), MODIFY)
    info = get_info(volc, conversation_id)
    assert info["Notice"] == "new"
    assert info["Name"] == "n"
    assert info["AvatarUrl"] == "http://a"
    assert info["Description"] == "d"
    assert info["Ext"] == {"k": "v"}
    assert info["OwnerUserId"] == OWNER


def test_modify_treats_null_as_absent(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, group(app_id, Name="keep", Ext={"k": "v"}))
    body = modify(app_id, conversation_id, Name=None, Ext=None, OwnerUserId=None, Notice="n")
    expect_ok(volc.call(MODIFY, body), MODIFY)
    info = get_info(volc, conversation_id)
    assert info["Name"] == "keep"
    assert info["Ext"] == {"k": "v"}
    assert info["Notice"] == "n"


def test_modify_merges_ext_per_key(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, group(app_id, Ext={"a": "1", "b": "2"}))
    expect_ok(volc.call(MODIFY, modify(app_id, conversation_id, Ext={"b": "3", "c": "4"})), MODIFY)
    assert get_info(volc, conversation_id)["Ext"] == {"a": "1", "b": "3", "c": "4"}


def test_modify_with_empty_string_sets_an_empty_string(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, group(app_id, Name="n", Description="d"))
    expect_ok(volc.call(MODIFY, modify(app_id, conversation_id, Name="")), MODIFY)
    info = get_info(volc, conversation_id)
    assert info["Name"] == ""
    assert info["Description"] == "d"


def test_modify_single_chat_info_is_allowed(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, single(app_id))
    expect_ok(volc.call(MODIFY, modify(app_id, conversation_id, Name="pair")), MODIFY)
    assert get_info(volc, conversation_id)["Name"] == "pair"


def test_owner_transfer_to_a_non_member_is_refused(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, group(app_id, Name="n"))
    body = modify(app_id, conversation_id, OwnerUserId=OTHER, Name="changed")
    expect_error(volc.call(MODIFY, body), 400, "ParticipantNotInConversation")
    info = get_info(volc, conversation_id)
    assert info["OwnerUserId"] == OWNER
    assert info["Name"] == "n"  # the whole modification failed, not just the transfer


def test_owner_transfer_on_a_single_chat_is_refused(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, single(app_id))
    body = modify(app_id, conversation_id, OwnerUserId=OTHER)
    expect_error(volc.call(MODIFY, body), 400, "SingleConversationNotSupport")
    assert get_info(volc, conversation_id)["OwnerUserId"] == OWNER


@pytest.mark.parametrize("owner", [{"OwnerUserId": OWNER}, {"OwnerUserIdStr": str(OWNER)}])
def test_owner_transfer_to_the_current_owner_is_fine(volc: VolcClient, owner: Body) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, group(app_id))
    expect_ok(volc.call(MODIFY, modify(app_id, conversation_id, **owner)), MODIFY)
    assert get_info(volc, conversation_id)["OwnerUserId"] == OWNER


def test_modify_unknown_conversation_is_not_found(volc: VolcClient) -> None:
    body = modify(volc.tenant.app_id, 123456789, Name="x")
    expect_error(volc.call(MODIFY, body), 400, "ConversationNotFound")


def test_modify_conversation_of_another_app_is_not_found(volc: VolcClient, engine: Engine) -> None:
    other_app = second_app(engine, volc.tenant)
    conversation_id = create_id(volc, group(volc.tenant.app_id, Name="mine"))
    expect_error(
        volc.call(MODIFY, modify(other_app, conversation_id, Name="stolen")),
        400,
        "ConversationNotFound",
    )
    assert get_info(volc, conversation_id)["Name"] == "mine"
    # Nor can the other app read it.
    result = expect_ok(volc.call(BATCH_GET, batch_get(other_app, [conversation_id])), BATCH_GET)
    assert result == {"ConversationCoreInfos": []}


def test_modify_time_is_never_before_create_time(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, group(app_id))
    expect_ok(volc.call(MODIFY, modify(app_id, conversation_id, Name="x")), MODIFY)
    info = get_info(volc, conversation_id)
    assert type(info["ModifyTime"]) is int
    assert info["CreateTime"] <= info["ModifyTime"] <= time.time() + 1


@pytest.mark.parametrize(
    "core",
    [
        {},
        {"ConversationShortId": None},
        {"ConversationShortId": 0},
        {"ConversationShortId": -1},
        {"ConversationShortId": "123"},
        {"ConversationShortId": 1.0},
        {"ConversationShortId": 1 << 63},
    ],
    ids=["missing", "null", "zero", "negative", "string", "float", "beyond-int64"],
)
def test_modify_needs_a_valid_conversation_id(volc: VolcClient, core: Body) -> None:
    body = {"AppId": volc.tenant.app_id, "ConversationCoreInfo": {**core, "Name": "x"}}
    expect_error(volc.call(MODIFY, body), 400, "InvalidParam")


def test_modify_with_too_long_name_changes_nothing(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, group(app_id, Name="n"))
    body = modify(app_id, conversation_id, Name="x" * (rules.MAX_NAME + 1), Notice="changed")
    expect_error(volc.call(MODIFY, body), 400, "InvalidParam")
    info = get_info(volc, conversation_id)
    assert info["Name"] == "n"
    assert info["Notice"] == ""


# --- BatchGetConversations ------------------------------------------------------------------------


def test_batch_get_keeps_request_order(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    a, b, c = (create_id(volc, group(app_id, Name=n)) for n in "abc")
    infos = get_infos(volc, [c, a, b])
    assert [i["ConversationShortId"] for i in infos] == [c, a, b]
    assert [i["Name"] for i in infos] == ["c", "a", "b"]


def test_batch_get_collapses_duplicates_and_omits_unknown_ids(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    a, b = create_id(volc, group(app_id)), create_id(volc, group(app_id))
    infos = get_infos(volc, [b, 987654321, a, b, a, INT64_MAX])
    assert [i["ConversationShortId"] for i in infos] == [b, a]
    assert get_infos(volc, [987654321]) == []


@pytest.mark.parametrize(
    ("fields", "with_count"),
    [({}, False), ({"SkipMemberCount": True}, False), ({"SkipMemberCount": False}, True)],
    ids=["absent", "true", "false"],
)
def test_member_count_only_when_not_skipped(
    volc: VolcClient, fields: Body, with_count: bool
) -> None:
    app_id = volc.tenant.app_id
    pair, team = create_id(volc, single(app_id)), create_id(volc, group(app_id))
    infos = get_infos(volc, [pair, team], **fields)
    if with_count:
        assert [i["MemberCount"] for i in infos] == [2, 1]
        assert all(type(i["MemberCount"]) is int for i in infos)
    else:
        assert all("MemberCount" not in i for i in infos)
    assert infos[0]["OtherUserId"] == OTHER
    assert "OtherUserId" not in infos[1]


def test_batch_get_info_has_the_create_shape(volc: VolcClient) -> None:
    created = create(volc, single(volc.tenant.app_id))["ConversationInfo"]
    (fetched,) = get_infos(volc, [created["ConversationShortId"]], SkipMemberCount=False)
    assert fetched == created


def test_batch_get_accepts_100_ids_and_refuses_101(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    known = create_id(volc, group(app_id))
    ids = [known, *range(1, rules.MAX_BATCH_GET)]
    assert len(ids) == 100
    assert [i["ConversationShortId"] for i in get_infos(volc, ids)] == [known]
    response = volc.call(BATCH_GET, batch_get(app_id, [*ids, 100_000]))
    expect_error(response, 400, "InvalidParam")


@pytest.mark.parametrize(
    ("element", "code"),
    [
        (0, "ConversationShortIdsHasInvalidElem"),
        (-1, "ConversationShortIdsHasInvalidElem"),
        (-INT64_MAX - 1, "ConversationShortIdsHasInvalidElem"),
        ("123", "ConversationShortIdsHasInvalidElem"),
        (1.5, "ConversationShortIdsHasInvalidElem"),
        (1.0, "ConversationShortIdsHasInvalidElem"),
        (True, "ConversationShortIdsHasInvalidElem"),
        (None, "ConversationShortIdsHasInvalidElem"),
        (1 << 63, "InvalidParam"),
    ],
    ids=[
        "zero",
        "negative",
        "int64-min",
        "string",
        "float",
        "float-integral",
        "bool",
        "null",
        "beyond-int64",
    ],
)
def test_batch_get_invalid_element(volc: VolcClient, element: Any, code: str) -> None:
    known = create_id(volc, group(volc.tenant.app_id))
    response = volc.call(BATCH_GET, batch_get(volc.tenant.app_id, [known, element]))
    expect_error(response, 400, code)


@pytest.mark.parametrize(
    "body",
    [
        {"ConversationShortId": []},
        {"ConversationShortId": None},
        {},
        {"ConversationShortId": 5},
        {"ConversationShortId": "5"},
        {"ConversationShortId": [1], "SkipMemberCount": "false"},
        {"ConversationShortId": [1], "SkipMemberCount": 0},
    ],
    ids=["empty", "null", "missing", "scalar", "string", "skip-string", "skip-int"],
)
def test_batch_get_bad_request_is_invalid_param(volc: VolcClient, body: Body) -> None:
    response = volc.call(BATCH_GET, {"AppId": volc.tenant.app_id, **body})
    expect_error(response, 400, "InvalidParam")


# --- errors: query, method, body ------------------------------------------------------------------


def test_missing_action_is_missing_parameter(volc: VolcClient) -> None:
    response = post(volc, {"Version": VERSION}, b"{}")
    expect_error(response, 400, "MissingParameter")


def test_missing_version_is_missing_parameter(volc: VolcClient) -> None:
    response = post(volc, {"Action": CREATE}, b"{}")
    expect_error(response, 400, "MissingParameter")


def test_unknown_action_is_invalid_action_or_version(volc: VolcClient) -> None:
    response = volc.call("DoSomething", {})
    error = expect_error(response, 404, "InvalidActionOrVersion")
    assert error["Message"] == f"Could not find operation DoSomething for version {VERSION}"
    metadata = response.json()["ResponseMetadata"]
    assert metadata["Action"] == "DoSomething"
    assert metadata["Version"] == VERSION


def test_wrong_version_is_invalid_action_or_version(volc: VolcClient) -> None:
    response = volc.call(CREATE, group(volc.tenant.app_id), version="2023-01-01")
    error = expect_error(response, 404, "InvalidActionOrVersion")
    assert error["Message"] == f"Could not find operation {CREATE} for version 2023-01-01"
    assert response.json()["ResponseMetadata"]["Version"] == "2023-01-01"


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_other_methods_are_not_allowed(
    volc: VolcClient, count: Callable[[int], int], method: str
) -> None:
    body = json.dumps(group(volc.tenant.app_id)).encode()
    response = post(volc, {"Action": CREATE, "Version": VERSION}, body, method=method)
    expect_error(response, 405, "MethodNotAllowed")
    assert count(volc.tenant.app_id) == 0


@pytest.mark.parametrize(
    "raw",
    [b"{", b"", b"not json", b'{"AppId": NaN}', b'{"AppId": 1,}', b"\xff\xfe{}"],
    ids=["truncated", "empty", "text", "nan", "trailing-comma", "not-utf8"],
)
def test_malformed_json_is_json_parsing_error(volc: VolcClient, raw: bytes) -> None:
    expect_error(volc.call(CREATE, None, raw=raw), 400, "JsonParsingError")


def test_deeply_nested_json_is_a_clear_error_not_a_crash(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    raw = b'{"AppId": %d, "X": ' % volc.tenant.app_id + b"[" * 5000 + b"]" * 5000 + b"}"
    expect_error(volc.call(CREATE, None, raw=raw), 400, "InvalidParam")
    assert count(volc.tenant.app_id) == 0


@pytest.mark.parametrize("raw", [b"[]", b"[{}]", b'"x"', b"null", b"1"])
def test_body_that_is_not_an_object_is_invalid_param(volc: VolcClient, raw: bytes) -> None:
    expect_error(volc.call(CREATE, None, raw=raw), 400, "InvalidParam")


def _with(body: Body, path: str, value: Any) -> Body:
    """A copy of ``body`` with ``value`` at the dotted ``path``."""
    copy: Body = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    target = copy
    for name in parents:
        target = target[name]
    target[last] = value
    return copy


BAD_FIELDS: list[tuple[str, Any]] = [
    ("AppId", "1"),
    ("AppId", 1.0),
    ("AppId", True),
    ("AppId", None),
    ("AppId", 1 << 31),
    ("AppId", -(1 << 31) - 1),
    ("OwnerUserId", "5"),
    ("OwnerUserId", 5.0),
    ("OwnerUserId", False),
    ("OwnerUserId", 1 << 63),
    ("OwnerUserId", 1 << 70),
    ("OwnerUserId", 0),
    ("OwnerUserId", -5),
    ("OwnerUserIdStr", 5),
    ("OwnerUserIdStr", "u" * 129),
    ("OtherUserId", "10002"),
    ("InboxType", -(1 << 31) - 1),
    ("InboxType", 1 << 31),
    ("InboxType", -1),
    ("InboxType", "0"),
    ("IdempotentId", 7),
    ("IdempotentId", "i" * (rules.MAX_IDEMPOTENT_ID + 1)),
    ("ConversationCoreInfo", "group"),
    ("ConversationCoreInfo", []),
    ("ConversationCoreInfo", None),
    ("ConversationCoreInfo.ConversationType", 3),
    ("ConversationCoreInfo.ConversationType", 0),
    ("ConversationCoreInfo.ConversationType", None),
    ("ConversationCoreInfo.ConversationType", "2"),
    ("ConversationCoreInfo.ConversationType", 2.0),
    ("ConversationCoreInfo.Name", 5),
    ("ConversationCoreInfo.Name", "n" * (rules.MAX_NAME + 1)),
    ("ConversationCoreInfo.AvatarUrl", "a" * (rules.MAX_AVATAR_URL + 1)),
    ("ConversationCoreInfo.Description", "d" * (rules.MAX_DESCRIPTION + 1)),
    ("ConversationCoreInfo.Notice", "n" * (rules.MAX_NOTICE + 1)),
    ("ConversationCoreInfo.Ext", {"a": 1}),
    ("ConversationCoreInfo.Ext", {"a": None}),
    ("ConversationCoreInfo.Ext", ["a"]),
    ("ConversationCoreInfo.Ext", "a=b"),
    ("ConversationCoreInfo.Ext", {"": "empty key"}),
    ("ConversationCoreInfo.Ext", {"k" * (rules.MAX_EXT_KEY + 1): "v"}),
    ("ConversationCoreInfo.Ext", {"k": "v" * (rules.MAX_EXT_VALUE + 1)}),
    ("ConversationCoreInfo.Ext", {f"k{i}": "v" for i in range(rules.MAX_EXT_PAIRS + 1)}),
    ("ConversationCoreInfo.Ext", {"k": "a\u0000b"}),
    ("ConversationCoreInfo.Ext", {"k\u0000": "v"}),
]


@pytest.mark.parametrize(
    ("path", "value"), BAD_FIELDS, ids=[f"{p}={v!r}"[:60] for p, v in BAD_FIELDS]
)
def test_bad_create_field_is_invalid_param_and_writes_nothing(
    volc: VolcClient, count: Callable[[int], int], path: str, value: Any
) -> None:
    body = _with(group(volc.tenant.app_id), path, value)
    expect_error(volc.call(CREATE, body), 400, "InvalidParam")
    assert count(volc.tenant.app_id) == 0


def test_missing_core_info_is_invalid_param(volc: VolcClient) -> None:
    body = {"AppId": volc.tenant.app_id, "OwnerUserId": OWNER}
    expect_error(volc.call(CREATE, body), 400, "InvalidParam")


@pytest.mark.parametrize("name", ["AppId", "OwnerUserId"])
def test_missing_required_field_is_invalid_param(volc: VolcClient, name: str) -> None:
    body = group(volc.tenant.app_id)
    del body[name]
    expect_error(volc.call(CREATE, body), 400, "InvalidParam")


def test_integer_beyond_64_bits_is_invalid_param(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    raw = json.dumps(group(volc.tenant.app_id)).replace(str(OWNER), str(1 << 70)).encode()
    assert str(1 << 70).encode() in raw
    expect_error(volc.call(CREATE, None, raw=raw), 400, "InvalidParam")
    assert count(volc.tenant.app_id) == 0


def test_limits_are_inclusive(volc: VolcClient) -> None:
    core: Body = {
        "Name": "n" * rules.MAX_NAME,
        "AvatarUrl": "a" * rules.MAX_AVATAR_URL,
        "Description": "d" * rules.MAX_DESCRIPTION,
        "Notice": "o" * rules.MAX_NOTICE,
        "Ext": {f"{i:0{rules.MAX_EXT_KEY}d}": "v" * 64 for i in range(rules.MAX_EXT_PAIRS)},
    }
    body = {**group(volc.tenant.app_id, **core), "IdempotentId": "i" * rules.MAX_IDEMPOTENT_ID}
    body["OwnerUserIdStr"] = "u" * 128
    info = create(volc, body)["ConversationInfo"]
    assert info["Name"] == core["Name"]
    assert info["Ext"] == core["Ext"]
    assert info["OwnerUserIdStr"] == "u" * 128


def test_single_without_other_user_needs_the_other_participant(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    body = single(volc.tenant.app_id)
    del body["OtherUserId"]
    code = "CreateSingleConversationNeedOtherParticipantId"
    expect_error(volc.call(CREATE, body), 400, code)
    # The Go SDK sends an unset OtherUserId as 0: that is no other user either.
    expect_error(volc.call(CREATE, single(volc.tenant.app_id, other=0)), 400, code)
    assert count(volc.tenant.app_id) == 0


@pytest.mark.parametrize(
    "text",
    ["a\u0000b", "\u0000"],
    ids=["inner-nul", "only-nul"],
)
@pytest.mark.parametrize(
    "path",
    [
        "ConversationCoreInfo.Name",
        "ConversationCoreInfo.AvatarUrl",
        "ConversationCoreInfo.Description",
        "ConversationCoreInfo.Notice",
        "IdempotentId",
        "OwnerUserIdStr",
    ],
)
def test_nul_characters_are_invalid_param_on_every_engine(
    volc: VolcClient, count: Callable[[int], int], path: str, text: str
) -> None:
    # PostgreSQL text cannot hold NUL: refused up front rather than failing in the database.
    body = _with(group(volc.tenant.app_id), path, text)
    expect_error(volc.call(CREATE, body), 400, "InvalidParam")
    assert count(volc.tenant.app_id) == 0


def test_nul_characters_in_modify_are_invalid_param(volc: VolcClient) -> None:
    app_id = volc.tenant.app_id
    conversation_id = create_id(volc, group(app_id, Name="n"))
    cores: list[Body] = [{"Name": "a\u0000"}, {"OwnerUserIdStr": "\u0000"}, {"Ext": {"k": "\0"}}]
    for core in cores:
        expect_error(
            volc.call(MODIFY, modify(app_id, conversation_id, **core)), 400, "InvalidParam"
        )
    assert get_info(volc, conversation_id)["Name"] == "n"


def test_zero_twin_names_nobody_and_the_integer_decides(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    body = {**group(volc.tenant.app_id, owner=OWNER), "OwnerUserIdStr": "0"}
    info = create(volc, body)["ConversationInfo"]
    assert info["OwnerUserId"] == OWNER
    assert info["OwnerUserIdStr"] == str(OWNER)
    for zero in ("0", "000"):  # like OwnerUserId 0: no owner at all
        body = {**group(volc.tenant.app_id, owner=0), "OwnerUserIdStr": zero}
        expect_error(volc.call(CREATE, body), 400, "InvalidParam")
    assert count(volc.tenant.app_id) == 1


# --- errors: body size ----------------------------------------------------------------------------


def _padded(app_id: int, size: int) -> bytes:
    """A valid create body of exactly ``size`` bytes (padding in an ignored field)."""
    base = json.dumps({**group(app_id), "Padding": ""}).encode()
    raw = base[:-2] + b"x" * (size - len(base)) + b'"}'
    assert len(raw) == size
    json.loads(raw)
    return raw


def test_body_at_the_limit_is_accepted(volc: VolcClient) -> None:
    raw = _padded(volc.tenant.app_id, 1 << 20)
    response = volc.call(CREATE, None, raw=raw)
    assert expect_ok(response, CREATE)["Exist"] is False


def test_oversized_body_is_413_and_writes_nothing(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    raw = _padded(volc.tenant.app_id, (1 << 20) + 1)
    response = volc.call(CREATE, None, raw=raw)
    expect_error(response, 413, "InvalidParam")
    assert count(volc.tenant.app_id) == 0


def test_oversized_chunked_body_is_413_and_writes_nothing(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    raw = _padded(volc.tenant.app_id, (1 << 20) + 4096)
    query = {"Action": CREATE, "Version": VERSION}
    headers = signed_headers(volc.tenant, volc.server.host, query, raw)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is only known while reading
        for start in range(0, len(raw), 65536):
            yield raw[start : start + 65536]

    response = volc.http.post("/", params=query, content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    expect_error(response, 413, "InvalidParam")
    assert count(volc.tenant.app_id) == 0


# --- errors: apps ---------------------------------------------------------------------------------


def test_unknown_app_is_app_not_found(volc: VolcClient) -> None:
    for action, body in [
        (CREATE, group(UNKNOWN_APP_ID)),
        (MODIFY, modify(UNKNOWN_APP_ID, 1, Name="x")),
        (BATCH_GET, batch_get(UNKNOWN_APP_ID, [1])),
    ]:
        expect_error(volc.call(action, body), 400, "AppNotFound")


def test_app_of_another_account_is_no_auth(
    volc: VolcClient, database_url: str, count: Callable[[int], int]
) -> None:
    stranger = new_tenant(database_url)
    theirs = VolcClient(volc.server, stranger)
    try:
        their_conversation = create_id(theirs, group(stranger.app_id, Name="theirs"))
    finally:
        theirs.close()
    for action, body in [
        (CREATE, group(stranger.app_id)),
        (MODIFY, modify(stranger.app_id, their_conversation, Name="mine now")),
        (BATCH_GET, batch_get(stranger.app_id, [their_conversation])),
    ]:
        expect_error(volc.call(action, body), 400, "NoAuth")
    assert count(stranger.app_id) == 1


def test_disabled_app_is_app_status_exception(
    uncached: VolcClient, engine: Engine, count: Callable[[int], int]
) -> None:
    app_id = uncached.tenant.app_id
    conversation_id = create_id(uncached, group(app_id))  # the app is now in the access cache
    admin.set_app_status(engine, app_id, EntityStatus.DISABLED)
    for action, body in [
        (CREATE, group(app_id)),
        (MODIFY, modify(app_id, conversation_id, Name="x")),
        (BATCH_GET, batch_get(app_id, [conversation_id])),
    ]:
        expect_error(uncached.call(action, body), 400, "AppStatusException")
    assert count(app_id) == 1
    admin.set_app_status(engine, app_id, EntityStatus.ACTIVE)
    assert create(uncached, group(app_id))["Exist"] is False


# --- errors: authentication -----------------------------------------------------------------------


def test_missing_authorization_is_missing_request_info(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    body = json.dumps(group(volc.tenant.app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    response = volc.http.post(
        "/", params=query, content=body, headers={"Content-Type": "application/json"}
    )
    expect_error(response, 400, "MissingRequestInfo")
    headers = signed_headers(volc.tenant, volc.server.host, query, body)
    del headers["Authorization"]
    expect_error(
        volc.http.post("/", params=query, content=body, headers=headers), 400, "MissingRequestInfo"
    )
    assert count(volc.tenant.app_id) == 0


def test_missing_x_date_is_missing_request_info(volc: VolcClient) -> None:
    body = json.dumps(group(volc.tenant.app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    headers = signed_headers(volc.tenant, volc.server.host, query, body)
    del headers["X-Date"]
    response = volc.http.post("/", params=query, content=body, headers=headers)
    expect_error(response, 400, "MissingRequestInfo")


def test_wrong_secret_is_signature_mismatch(volc: VolcClient, count: Callable[[int], int]) -> None:
    body = json.dumps(group(volc.tenant.app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    headers = signed_headers(
        volc.tenant, volc.server.host, query, body, secret_key=volc.tenant.secret_key + "x"
    )
    response = volc.http.post("/", params=query, content=body, headers=headers)
    expect_error(response, 401, "SignatureDoesNotMatch")
    assert count(volc.tenant.app_id) == 0


def sign_without_host(
    tenant: Tenant, query: dict[str, str], body: bytes, *, signed: tuple[str, ...]
) -> dict[str, str]:
    """Headers as @volcengine/openapi (the Node SDK) signs them: ``x-content-sha256;x-date`` and
    no host, built by hand from signing.md so that the reference signer is not involved."""
    x_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    body_sha256 = hashlib.sha256(body).hexdigest()
    headers = {"x-date": x_date, "x-content-sha256": body_sha256}
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in signed)
    canonical_request = "\n".join(
        ["POST", "/", canonical_query, canonical_headers, ";".join(signed), body_sha256]
    )
    scope = f"{x_date[:8]}/cn-north-1/rtc/request"
    string_to_sign = "\n".join(
        ["HMAC-SHA256", x_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = tenant.secret_key.encode()
    for part in (x_date[:8], "cn-north-1", "rtc", "request"):
        key = hmac.digest(key, part.encode(), "sha256")
    signature = hmac.digest(key, string_to_sign.encode(), "sha256").hex()
    return {
        "Content-Type": "application/json",
        "X-Date": x_date,
        "X-Content-Sha256": body_sha256,
        "Authorization": f"HMAC-SHA256 Credential={tenant.access_key}/{scope}, "
        f"SignedHeaders={';'.join(signed)}, Signature={signature}",
    }


def test_request_signed_without_host_is_accepted(volc: VolcClient) -> None:
    body = json.dumps(group(volc.tenant.app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    headers = sign_without_host(volc.tenant, query, body, signed=("x-content-sha256", "x-date"))
    response = volc.http.post("/", params=query, content=body, headers=headers)
    assert type(expect_ok(response, CREATE)["ConversationShortId"]) is int


def test_request_signed_without_x_date_is_signature_mismatch(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    body = json.dumps(group(volc.tenant.app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    headers = sign_without_host(volc.tenant, query, body, signed=("x-content-sha256",))
    response = volc.http.post("/", params=query, content=body, headers=headers)
    error = expect_error(response, 401, "SignatureDoesNotMatch")
    assert "x-date" in error["Message"]
    assert count(volc.tenant.app_id) == 0


def test_body_changed_after_signing_is_signature_mismatch(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    signed_body = json.dumps(group(volc.tenant.app_id, Name="a")).encode()
    sent_body = json.dumps(group(volc.tenant.app_id, Name="b")).encode()
    query = {"Action": CREATE, "Version": VERSION}
    headers = signed_headers(volc.tenant, volc.server.host, query, signed_body)
    del headers["X-Content-Sha256"]  # so that only the signature itself can catch the change
    response = volc.http.post("/", params=query, content=sent_body, headers=headers)
    expect_error(response, 401, "SignatureDoesNotMatch")
    assert count(volc.tenant.app_id) == 0


def test_unknown_access_key_is_invalid_access_key(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    ghost = dataclasses.replace(volc.tenant, access_key="AKLT" + "0" * 32)
    body = json.dumps(group(volc.tenant.app_id)).encode()
    response = post(volc, {"Action": CREATE, "Version": VERSION}, body, tenant=ghost)
    expect_error(response, 401, "InvalidAccessKey")
    assert count(volc.tenant.app_id) == 0


def test_disabled_key_is_invalid_access_key(
    uncached: VolcClient, engine: Engine, count: Callable[[int], int]
) -> None:
    tenant = uncached.tenant
    create(uncached, group(tenant.app_id))  # the key is now in the access cache
    admin.set_key_status(engine, tenant.access_key, EntityStatus.DISABLED)
    expect_error(uncached.call(CREATE, group(tenant.app_id)), 401, "InvalidAccessKey")
    assert count(tenant.app_id) == 1


def test_a_disabled_key_with_a_wrong_signature_learns_nothing_of_the_key(
    uncached: VolcClient, engine: Engine, count: Callable[[int], int]
) -> None:
    tenant = uncached.tenant
    admin.set_key_status(engine, tenant.access_key, EntityStatus.DISABLED)
    body = json.dumps(group(tenant.app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    forged = dataclasses.replace(tenant, secret_key="not-the-secret")
    # Without the secret, the caller hears only that the signature is wrong …
    expect_error(post(uncached, query, body, tenant=forged), 401, "SignatureDoesNotMatch")
    # … with it, that the key is disabled.
    expect_error(post(uncached, query, body), 401, "InvalidAccessKey")
    admin.set_account_status(engine, tenant.account, EntityStatus.DISABLED)
    expect_error(post(uncached, query, body, tenant=forged), 401, "SignatureDoesNotMatch")
    assert count(tenant.app_id) == 0


@pytest.mark.parametrize("region", ["cn-north-1", "ap-southeast-1"])
def test_the_answer_names_the_region_the_request_was_signed_for(
    volc: VolcClient, region: str
) -> None:
    for body in (group(volc.tenant.app_id), modify(volc.tenant.app_id, 1, Name="x")):
        action = CREATE if "OwnerUserId" in body else MODIFY
        data = json.dumps(body).encode()
        query = {"Action": action, "Version": VERSION}
        headers = sign_request(
            method="POST", host=volc.server.host, query=query, body=data,
            access_key=volc.tenant.access_key, secret_key=volc.tenant.secret_key,
            now=time.time(), region=region,
        )  # fmt: skip
        response = volc.http.post("/", params=query, content=data, headers=headers)
        assert response.json()["ResponseMetadata"]["Region"] == region, response.text


def test_an_unsupported_region_is_refused_and_answered_in_the_default_one(
    volc: VolcClient,
) -> None:
    data = json.dumps(group(volc.tenant.app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    headers = sign_request(
        method="POST", host=volc.server.host, query=query, body=data,
        access_key=volc.tenant.access_key, secret_key=volc.tenant.secret_key,
        now=time.time(), region="eu-west-9",
    )  # fmt: skip
    response = volc.http.post("/", params=query, content=data, headers=headers)
    expect_error(response, 401, "SignatureDoesNotMatch")  # which checks Region cn-north-1


def test_duplicate_authorization_headers_are_refused(volc: VolcClient) -> None:
    body = json.dumps(group(volc.tenant.app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    headers = signed_headers(volc.tenant, volc.server.host, query, body)
    raw_headers = [*headers.items(), ("Authorization", headers["Authorization"])]
    response = volc.http.post("/", params=query, content=body, headers=raw_headers)
    expect_error(response, 400, "MissingRequestInfo")


def test_disabled_account_is_access_denied(
    uncached: VolcClient, engine: Engine, count: Callable[[int], int]
) -> None:
    tenant = uncached.tenant
    create(uncached, group(tenant.app_id))
    admin.set_account_status(engine, tenant.account, EntityStatus.DISABLED)
    expect_error(uncached.call(CREATE, group(tenant.app_id)), 403, "AccessDenied")
    assert count(tenant.app_id) == 1


@pytest.mark.parametrize("offset_minutes", [-20, 20])
def test_x_date_twenty_minutes_away_is_invalid_timestamp(
    volc: VolcClient, count: Callable[[int], int], offset_minutes: int
) -> None:
    body = json.dumps(group(volc.tenant.app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    response = post(volc, query, body, now=time.time() + offset_minutes * 60)
    expect_error(response, 400, "InvalidTimestamp")
    assert count(volc.tenant.app_id) == 0


# --- nothing written ------------------------------------------------------------------------------


def test_only_successful_creates_write(
    volc: VolcClient, database_url: str, count: Callable[[int], int]
) -> None:
    """Each refused create leaves the app's row count as it was; an accepted one adds a row."""
    app_id = volc.tenant.app_id
    stranger = new_tenant(database_url)
    valid = json.dumps(group(app_id)).encode()
    query = {"Action": CREATE, "Version": VERSION}
    bad_sign = signed_headers(volc.tenant, volc.server.host, query, valid, secret_key="nope")
    attempts: list[Callable[[], httpx.Response]] = [
        lambda: volc.call(CREATE, _with(group(app_id), "ConversationCoreInfo.Ext", {"a": 1})),
        lambda: volc.call(CREATE, None, raw=valid[:-1]),
        lambda: volc.http.post("/", params=query, content=valid, headers=bad_sign),
        lambda: volc.call(CREATE, None, raw=_padded(app_id, (1 << 20) + 1)),
        lambda: volc.call(CREATE, single(app_id, other=0)),
        lambda: volc.call(CREATE, group(app_id), version="2019-01-01"),
    ]
    for attempt in attempts:
        response = attempt()
        assert response.status_code >= 400, response.text
        assert count(app_id) == 0, response.text
    expect_error(volc.call(CREATE, group(stranger.app_id)), 400, "NoAuth")
    assert count(stranger.app_id) == 0
    create(volc, group(app_id))
    assert count(app_id) == 1


# --- the error table ------------------------------------------------------------------------------


def test_every_error_code_has_a_volc_entry() -> None:
    assert set(VOLC_ERRORS) == set(ErrorCode)
    for code, (name, code_n, status) in VOLC_ERRORS.items():
        assert type(name) is str and name, code
        assert type(code_n) is int and code_n > 0, code
        assert 400 <= status <= 599, code


def test_code_n_is_one_to_one_with_the_code_name() -> None:
    by_name: dict[str, set[int]] = {}
    for name, code_n, _status in VOLC_ERRORS.values():
        by_name.setdefault(name, set()).add(code_n)
    assert all(len(values) == 1 for values in by_name.values()), by_name
    all_code_n = [next(iter(values)) for values in by_name.values()]
    assert len(set(all_code_n)) == len(all_code_n), by_name


def test_gateway_codes_carry_the_documented_code_n_and_status() -> None:
    expected = {
        ErrorCode.MISSING_PARAMETER: ("MissingParameter", 100002, 400),
        ErrorCode.MISSING_AUTH: ("MissingRequestInfo", 100004, 400),
        ErrorCode.INVALID_TIMESTAMP: ("InvalidTimestamp", 100006, 400),
        ErrorCode.SERVICE_NOT_FOUND: ("ServiceNotFound", 100007, 404),
        ErrorCode.UNKNOWN_ACTION: ("InvalidActionOrVersion", 100008, 404),
        ErrorCode.UNKNOWN_ACCESS_KEY: ("InvalidAccessKey", 100009, 401),
        ErrorCode.SIGNATURE_MISMATCH: ("SignatureDoesNotMatch", 100010, 401),
        ErrorCode.ACCESS_DENIED: ("AccessDenied", 100013, 403),
        ErrorCode.INTERNAL: ("InternalError", 100014, 500),
    }
    for code, entry in expected.items():
        assert VOLC_ERRORS[code] == entry, code
    assert VOLC_ERRORS[ErrorCode.METHOD_NOT_ALLOWED][2] == 405
    assert VOLC_ERRORS[ErrorCode.RATE_LIMITED][:3:2] == ("FlowLimitExceeded", 429)


def test_without_an_id_node_writes_are_refused_and_readiness_says_why(
    volc: VolcClient, count: Callable[[int], int]
) -> None:
    app = volc.server.app
    assert volc.http.get("/readyz").json() == {"status": "ready", "problems": [], "degraded": []}
    saved = app.lease._valid_until
    app.lease._valid_until = 0.0  # as after losing the lease with no node free
    try:
        ready = volc.http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "not ready",
            "problems": ["no ID node is held"],
            "degraded": [],
        }
        response = volc.call(CREATE, group(volc.tenant.app_id))
        error = expect_error(response, 503, "ServiceUnavailable")
        assert "ID node" in error["Message"]
        assert count(volc.tenant.app_id) == 0
    finally:
        app.lease._valid_until = saved
    create(volc, group(volc.tenant.app_id))
