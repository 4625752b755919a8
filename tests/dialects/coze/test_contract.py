"""Raw-HTTP contract of the Coze dialect: envelopes, shapes, paging, error codes, isolation.

Every request goes over a socket to a live server with a real bearer token. Assertions pin the wire
facts that cozepy 0.20.0 depends on (reference/cozepy-wire.md): IDs are JSON strings, ``meta_data``
is always an object, ``code``/``msg`` say whether a call failed, ``x-tt-logid`` is on every answer,
modify answers under ``message``, the message list answers ``data`` plus ``first_id``,
``last_id`` and ``has_more`` at the top level.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import Engine, func, select

from convhub.config import Settings, parse_rate_limits
from convhub.dialects.coze.actions import ENDPOINTS
from convhub.dialects.coze.app import CozeDialect
from convhub.dialects.coze.errors import COZE_ERRORS
from convhub.domain.caller import Caller
from convhub.domain.models import EntityStatus
from convhub.domain.permissions import ALL_PERMISSIONS, Permission
from convhub.domain.policy import Policy
from convhub.domain.services import Services
from convhub.errors import ConvhubError, ErrorCode
from convhub.store.engine import create_database_engine
from convhub.store.tables import conversations, messages
from tests import admin
from tests.support import NO_LIMITS, LiveServer, Tenant, VolcClient, new_tenant

Body = dict[str, Any]

CONVERSATION_KEYS = {
    "id",
    "name",
    "created_at",
    "updated_at",
    "meta_data",
    "last_section_id",
    "creator_id",
    "connector_id",
    "bot_id",
}
MESSAGE_KEYS = {
    "id",
    "conversation_id",
    "section_id",
    "bot_id",
    "chat_id",
    "role",
    "type",
    "content",
    "content_type",
    "meta_data",
    "created_at",
    "updated_at",
    "reasoning_content",
}
DOCUMENTED_CODES = {4000, 4002, 4003, 4005, 4008, 4100, 4101, 4200, 5000}
LOGID = re.compile(r"^\d{14}[0-9A-F]{18}$")
NO_BODY = object()


# --- clients and helpers --------------------------------------------------------------------------


class Coze:
    """Raw calls with a bearer token; every call is checked by ``expect_ok`` or ``expect_error``."""

    def __init__(self, server: LiveServer, token: str, user: str) -> None:
        self.server = server
        self.token = token
        self.user = user
        self.http = httpx.Client(base_url=server.base_url, timeout=30)

    def call(
        self,
        method: str,
        path: str,
        body: Any = NO_BODY,
        *,
        params: dict[str, Any] | None = None,
        raw: bytes | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        content: bytes | None = raw
        if body is not NO_BODY:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            sent.setdefault("Content-Type", "application/json")
        return self.http.request(method, path, params=params, content=content, headers=sent)

    def ok(self, method: str, path: str, body: Any = NO_BODY, **kwargs: Any) -> Body:
        return expect_ok(self.call(method, path, body, **kwargs))

    def error(
        self, method: str, path: str, body: Any = NO_BODY, *, code: int, status: int, **kwargs: Any
    ) -> Body:
        return expect_error(self.call(method, path, body, **kwargs), code, status)

    # The endpoints, as cozepy calls them.

    def create(self, **body: Any) -> Body:
        data = self.ok("POST", "/v1/conversation/create", body)["data"]
        check_conversation(data)
        return cast(Body, data)

    def retrieve(self, conversation_id: str) -> Body:
        path = "/v1/conversation/retrieve"
        data = self.ok("GET", path, params={"conversation_id": conversation_id})["data"]
        check_conversation(data)
        return cast(Body, data)

    def list(self, bot_id: str = "b1", **params: Any) -> Body:
        payload = self.ok("GET", "/v1/conversations", params={"bot_id": bot_id, **params})
        data = payload["data"]
        assert set(data) == {"conversations", "has_more"}, data
        assert type(data["has_more"]) is bool
        for c in data["conversations"]:
            check_conversation(c)
        return cast(Body, data)

    def add(
        self, conversation_id: str, role: str = "user", content: str = "hi", **extra: Any
    ) -> Body:
        body = {"role": role, "content": content, "content_type": "text", "meta_data": None}
        path = "/v1/conversation/message/create"
        payload = self.ok(
            "POST", path, {**body, **extra}, params={"conversation_id": conversation_id}
        )
        check_message(payload["data"])
        return cast(Body, payload["data"])

    def messages(self, conversation_id: str, **body: Any) -> Body:
        request = {
            "order": "desc",
            "chat_id": None,
            "before_id": None,
            "after_id": None,
            "limit": 50,
        }
        path = "/v1/conversation/message/list"
        payload = self.ok(
            "POST", path, {**request, **body}, params={"conversation_id": conversation_id}
        )
        assert set(payload) == {"code", "msg", "detail", "data", "first_id", "last_id", "has_more"}
        assert type(payload["first_id"]) is str and type(payload["last_id"]) is str
        assert type(payload["has_more"]) is bool
        for m in payload["data"]:
            check_message(m)
        ids = [m["id"] for m in payload["data"]]
        assert payload["first_id"] == (ids[0] if ids else "")
        assert payload["last_id"] == (ids[-1] if ids else "")
        return payload

    def message(self, conversation_id: str, message_id: str) -> Body:
        path = "/v1/conversation/message/retrieve"
        params = {"conversation_id": conversation_id, "message_id": message_id}
        data = self.ok("GET", path, params=params)["data"]
        check_message(data)
        return cast(Body, data)

    def close(self) -> None:
        self.http.close()


def expect_ok(response: httpx.Response) -> Body:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    logid = response.headers["x-tt-logid"]
    assert LOGID.match(logid), logid
    payload = response.json()
    assert payload["code"] == 0 and payload["msg"] == "", payload
    assert payload["detail"] == {"logid": logid}, payload
    assert "data" in payload or "message" in payload, payload
    return cast(Body, payload)


def expect_error(response: httpx.Response, code: int, status: int) -> Body:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    logid = response.headers["x-tt-logid"]
    assert LOGID.match(logid), logid
    payload = response.json()
    assert set(payload) == {"code", "msg", "detail"}, payload
    assert payload["code"] == code, payload
    assert type(payload["msg"]) is str and payload["msg"], payload
    assert payload["detail"] == {"logid": logid}, payload
    return cast(Body, payload)


def is_id(value: Any) -> bool:
    return type(value) is str and value.isascii() and value.isdigit() and int(value) > 0


def check_conversation(c: Body) -> None:
    assert set(c) == CONVERSATION_KEYS, c
    assert is_id(c["id"]) and is_id(c["last_section_id"]), c
    assert type(c["created_at"]) is int and type(c["updated_at"]) is int, c
    assert type(c["meta_data"]) is dict, c
    assert all(type(v) is str for v in c["meta_data"].values()), c
    for name in ("name", "creator_id", "connector_id", "bot_id"):
        assert type(c[name]) is str, c


def check_message(m: Body) -> None:
    assert set(m) == MESSAGE_KEYS, m
    assert is_id(m["id"]) and is_id(m["conversation_id"]) and is_id(m["section_id"]), m
    assert type(m["created_at"]) is int and type(m["updated_at"]) is int, m
    assert type(m["meta_data"]) is dict, m
    for name in ("bot_id", "chat_id", "role", "type", "content", "content_type"):
        assert type(m[name]) is str, m
    assert m["reasoning_content"] == ""


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url, pool_size=2)
    yield engine
    engine.dispose()


ClientFactory = Callable[..., Coze]


def _factory(
    server: LiveServer, engine: Engine, tenant: Tenant
) -> tuple[ClientFactory, list[Coze]]:
    made: list[Coze] = []

    def make(
        user: str = "alice",
        *,
        permissions: Any = None,
        expires_in: int | None = None,
        of: Tenant | None = None,
    ) -> Coze:
        token = admin.create_token(
            engine,
            (of or tenant).account,
            user=user,
            permissions=permissions,
            expires_in=expires_in,
        )
        client = Coze(server, token.token, user)
        made.append(client)
        return client

    return make, made


@pytest.fixture
def client(server: LiveServer, engine: Engine, tenant: Tenant) -> Iterator[ClientFactory]:
    """Makes clients of ``tenant``'s first app: ``client("bob", permissions=[...])``."""
    make, made = _factory(server, engine, tenant)
    yield make
    for c in made:
        c.close()


@pytest.fixture
def alice(client: ClientFactory) -> Coze:
    return client("alice")


@pytest.fixture
def count(engine: Engine) -> Callable[..., int]:
    """Rows in ``conversations`` of an app, or in ``messages`` of a conversation, from the DB."""

    def count(*, app_id: int | None = None, conversation_id: str | None = None) -> int:
        if app_id is not None:
            statement = select(func.count()).select_from(conversations)
            statement = statement.where(conversations.c.app_id == app_id)
        else:
            assert conversation_id is not None
            statement = select(func.count()).select_from(messages)
            statement = statement.where(messages.c.conversation_id == int(conversation_id))
        with engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())

    return count


# --- the error table ------------------------------------------------------------------------------


def test_every_error_code_has_a_coze_entry() -> None:
    assert set(COZE_ERRORS) == set(ErrorCode)
    for code, status in COZE_ERRORS.values():
        assert code in DOCUMENTED_CODES
        assert 400 <= status <= 599
    assert COZE_ERRORS[ErrorCode.INVALID_PARAM] == (4000, 400)
    assert COZE_ERRORS[ErrorCode.MALFORMED_JSON] == (4000, 400)
    assert COZE_ERRORS[ErrorCode.PAYLOAD_TOO_LARGE] == (4000, 413)
    assert COZE_ERRORS[ErrorCode.METHOD_NOT_ALLOWED] == (4000, 405)
    assert COZE_ERRORS[ErrorCode.CONVERSATION_NOT_FOUND][0] == 4002
    assert COZE_ERRORS[ErrorCode.META_DATA_OVER_LIMIT][0] == 4003
    assert COZE_ERRORS[ErrorCode.MESSAGE_NOT_FOUND][0] == 4005
    assert COZE_ERRORS[ErrorCode.RATE_LIMITED] == (4008, 429)
    assert COZE_ERRORS[ErrorCode.INVALID_TOKEN] == (4100, 401)
    assert COZE_ERRORS[ErrorCode.SIGNATURE_MISMATCH] == (4100, 401)
    assert COZE_ERRORS[ErrorCode.PERMISSION_DENIED] == (4101, 403)
    assert COZE_ERRORS[ErrorCode.ROUTE_NOT_FOUND] == (4200, 404)
    assert COZE_ERRORS[ErrorCode.INTERNAL] == (5000, 500)


def test_operations_are_named_for_the_limiter() -> None:
    operations = {"coze:" + e.operation for e in ENDPOINTS}
    assert "coze:CreateConversation" in operations
    assert all(re.fullmatch(r"coze:[A-Z][A-Za-z]+", name) for name in operations)
    assert len(operations) == len(ENDPOINTS) == 13


# --- conversations --------------------------------------------------------------------------------


def test_create_answers_the_envelope_and_a_conversation(alice: Coze) -> None:
    response = alice.call(
        "POST",
        "/v1/conversation/create",
        {
            "messages": [
                {"role": "user", "type": "question", "content": "hello", "content_type": "text"},
                {"role": "assistant", "content": "hi there", "content_type": "text"},
            ],
            "meta_data": {"k": "v"},
            "bot_id": "b1",
            "name": "n1",
            "connector_id": "1024",
        },
    )
    payload = expect_ok(response)
    assert set(payload) == {"code", "msg", "detail", "data"}
    c = payload["data"]
    check_conversation(c)
    assert c["name"] == "n1"
    assert c["meta_data"] == {"k": "v"}
    assert c["bot_id"] == "b1"
    assert c["connector_id"] == "1024"
    assert c["creator_id"] == "alice"
    assert abs(c["created_at"] - time.time()) < 60
    assert c["updated_at"] >= c["created_at"]
    assert alice.retrieve(c["id"]) == c
    listed = alice.messages(c["id"], order="asc")["data"]
    assert [(m["role"], m["type"], m["content"]) for m in listed] == [
        ("user", "question", "hello"),
        ("assistant", "answer", "hi there"),
    ]
    assert {m["section_id"] for m in listed} == {c["last_section_id"]}
    assert {m["conversation_id"] for m in listed} == {c["id"]}


def test_create_with_no_fields_has_object_meta_data_and_api_connector(alice: Coze) -> None:
    c = alice.create()
    assert c["meta_data"] == {}
    assert c["name"] == ""
    assert c["connector_id"] == "1024"
    # A body-less create (no cozepy call sends one, curl may) is an empty object too.
    response = alice.call("POST", "/v1/conversation/create", raw=b"")
    check_conversation(expect_ok(response)["data"])


def test_ids_in_bodies_may_be_integers_but_are_answered_as_strings(alice: Coze) -> None:
    c = alice.create(bot_id=7, connector_id=999, name="ints")
    assert c["bot_id"] == "7" and c["connector_id"] == "999"
    m = alice.add(c["id"])
    page = alice.messages(c["id"], before_id=0, after_id=0)
    assert [x["id"] for x in page["data"]] == [m["id"]]
    page = alice.messages(c["id"], after_id=int(m["id"]))
    assert page["data"] == [] and page["first_id"] == "" and page["last_id"] == ""


def test_logids_are_unique_and_match_the_header(alice: Coze) -> None:
    seen = set()
    for _ in range(5):
        response = alice.call("POST", "/v1/conversation/create", {})
        seen.add(expect_ok(response)["detail"]["logid"])
    response = alice.call("GET", "/v1/nowhere")
    seen.add(expect_error(response, 4200, 404)["detail"]["logid"])
    assert len(seen) == 6


def test_list_filters_by_bot_and_connector_and_pages(alice: Coze, client: ClientFactory) -> None:
    made = [alice.create(bot_id="bot-a", name=f"a{i}") for i in range(5)]
    alice.create(bot_id="bot-b")
    chat_sdk = alice.create(bot_id="bot-a", connector_id="999")
    client("bob").create(bot_id="bot-a")  # another user's: never listed for alice

    everything = alice.list("bot-a")
    assert [c["id"] for c in everything["conversations"]] == [c["id"] for c in reversed(made)]
    assert everything["has_more"] is False
    ascending = alice.list("bot-a", sort_order="ASC")
    assert [c["id"] for c in ascending["conversations"]] == [c["id"] for c in made]
    assert alice.list("bot-a", connector_id="999")["conversations"] == [chat_sdk]
    assert alice.list("bot-z") == {"conversations": [], "has_more": False}
    far = alice.list("bot-a", page_num=str((1 << 31) - 1), page_size="50")
    assert far == {"conversations": [], "has_more": False}
    # A blank parameter counts as absent, as the OpenAPI document says (schemathesis).
    assert alice.list("bot-a", page_num="", page_size="", sort_order="") == everything

    walked: list[str] = []
    page_num = 1
    while True:
        page = alice.list("bot-a", page_num=page_num, page_size=2)
        walked += [c["id"] for c in page["conversations"]]
        if not page["has_more"]:
            break
        page_num += 1
    assert walked == [c["id"] for c in reversed(made)]
    assert page_num == 3


@pytest.mark.parametrize(
    "params",
    [
        {},  # bot_id is required
        {"bot_id": ""},
        {"bot_id": "b", "page_size": "51"},
        {"bot_id": "b", "page_size": "0"},
        {"bot_id": "b", "page_num": "0"},
        {"bot_id": "b", "page_num": "-1"},
        {"bot_id": "b", "page_num": "1.5"},
        {"bot_id": "b", "page_size": "x"},
        {"bot_id": "b", "page_num": "99999999999"},
        {"bot_id": "b", "sort_order": "UP"},
        {"bot_id": ["a", "b"]},
        # PostgreSQL text cannot hold NUL: a filter holding one is refused, not a 500 (schemathesis)
        {"bot_id": "b\x00"},
        {"bot_id": "b", "connector_id": "\x00"},
    ],
)
def test_list_refuses_bad_query_parameters(alice: Coze, params: dict[str, Any]) -> None:
    alice.error("GET", "/v1/conversations", params=params, code=4000, status=400)


def test_rename_answers_the_conversation(alice: Coze) -> None:
    c = alice.create(name="old", meta_data={"k": "v"})
    path = f"/v1/conversations/{c['id']}"
    renamed = alice.ok("PUT", path, {"name": "new name"})["data"]
    check_conversation(renamed)
    assert renamed["name"] == "new name"
    assert renamed["id"] == c["id"] and renamed["meta_data"] == {"k": "v"}
    assert alice.retrieve(c["id"])["name"] == "new name"
    # cozepy sends {"name": null} when no name is given.
    kept = alice.ok("PUT", path, {"name": None})["data"]
    check_conversation(kept)
    assert kept["name"] == "new name"
    kept = alice.ok("PUT", path, {})["data"]  # an SDK that omits a null name
    assert kept["name"] == "new name"
    alice.error("PUT", path, {"name": "x" * 101}, code=4000, status=400)
    alice.error("PUT", path, {"name": 5}, code=4000, status=400)
    alice.error("PUT", path, raw=b'{"name":', code=4000, status=400)
    assert alice.ok("PUT", path, {"name": "y" * 100})["data"]["name"] == "y" * 100


def test_delete_hides_the_conversation_everywhere(
    alice: Coze, volc: VolcClient, tenant: Tenant
) -> None:
    c = alice.create(bot_id="bot-d")
    m = alice.add(c["id"])
    batch = {"AppId": tenant.app_id, "ConversationShortId": [int(c["id"])]}
    infos = volc.ok("BatchGetConversations", batch)["ConversationCoreInfos"]
    assert [i["ConversationId"] for i in infos] == [c["id"]]

    payload = alice.ok("DELETE", f"/v1/conversations/{c['id']}")
    assert payload["data"] == {}

    alice.error(
        "GET",
        "/v1/conversation/retrieve",
        params={"conversation_id": c["id"]},
        code=4002,
        status=404,
    )
    assert alice.list("bot-d")["conversations"] == []
    assert volc.ok("BatchGetConversations", batch)["ConversationCoreInfos"] == []
    alice.error("DELETE", f"/v1/conversations/{c['id']}", code=4002, status=404)
    alice.error("PUT", f"/v1/conversations/{c['id']}", {"name": "x"}, code=4002, status=404)
    alice.error("POST", f"/v1/conversations/{c['id']}/clear", code=4002, status=404)
    params = {"conversation_id": c["id"], "message_id": m["id"]}
    alice.error("GET", "/v1/conversation/message/retrieve", params=params, code=4002, status=404)
    alice.error(
        "POST",
        "/v1/conversation/message/list",
        {},
        params={"conversation_id": c["id"]},
        code=4002,
        status=404,
    )


def test_clear_moves_the_section_and_keeps_the_messages(alice: Coze) -> None:
    c = alice.create(messages=[{"role": "user", "content": "before", "content_type": "text"}])
    old_section = c["last_section_id"]
    # cozepy's clear: POST, Content-Length: 0, no Content-Type.
    response = alice.call("POST", f"/v1/conversations/{c['id']}/clear")
    assert response.request.headers["content-length"] == "0"
    assert "content-type" not in response.request.headers
    section = expect_ok(response)["data"]
    assert set(section) == {"id", "conversation_id"}
    assert is_id(section["id"]) and section["id"] != old_section
    assert section["conversation_id"] == c["id"]
    assert alice.retrieve(c["id"])["last_section_id"] == section["id"]
    after = alice.add(c["id"], content="after")
    assert after["section_id"] == section["id"]
    listed = alice.messages(c["id"], order="asc")["data"]
    assert [(m["content"], m["section_id"]) for m in listed] == [
        ("before", old_section),
        ("after", section["id"]),
    ]


# --- messages -------------------------------------------------------------------------------------


def test_message_create_retrieve_modify_delete(alice: Coze, count: Callable[..., int]) -> None:
    c = alice.create(bot_id="bot-m")
    m = alice.add(c["id"], meta_data={"a": "b"})
    assert (m["role"], m["type"], m["content"], m["content_type"]) == (
        "user",
        "question",
        "hi",
        "text",
    )
    assert m["meta_data"] == {"a": "b"}
    assert m["conversation_id"] == c["id"] and m["section_id"] == c["last_section_id"]
    plain = alice.add(c["id"], role="assistant", content="yo")
    assert plain["meta_data"] == {} and plain["type"] == "answer"
    obj = alice.add(c["id"], content='[{"type":"text","text":"x"}]', content_type="object_string")
    assert obj["content_type"] == "object_string"
    assert alice.message(c["id"], m["id"]) == m

    ids = {"conversation_id": c["id"], "message_id": m["id"]}
    payload = alice.ok(
        "POST",
        "/v1/conversation/message/modify",
        {"content": "edited", "content_type": "text", "meta_data": None},
        params=ids,
    )
    assert "data" not in payload  # cozepy reads the modified message under "message"
    modified = payload["message"]
    check_message(modified)
    assert modified["content"] == "edited" and modified["meta_data"] == {"a": "b"}
    assert alice.message(c["id"], m["id"]) == modified
    payload = alice.ok(
        "POST",
        "/v1/conversation/message/modify",
        {"content": None, "content_type": None, "meta_data": {"x": "y"}},
        params=ids,
    )
    assert payload["message"]["meta_data"] == {"x": "y"}
    assert payload["message"]["content"] == "edited"

    # cozepy's delete: POST, Content-Length: 0; it answers the deleted message.
    response = alice.call("POST", "/v1/conversation/message/delete", params=ids)
    assert response.request.headers["content-length"] == "0"
    deleted = expect_ok(response)["data"]
    check_message(deleted)
    assert deleted["id"] == m["id"]
    alice.error("GET", "/v1/conversation/message/retrieve", params=ids, code=4005, status=404)
    alice.error("POST", "/v1/conversation/message/delete", params=ids, code=4005, status=404)
    alice.error(
        "POST",
        "/v1/conversation/message/modify",
        {"content": "x", "content_type": "text"},
        params=ids,
        code=4005,
        status=404,
    )
    assert m["id"] not in [x["id"] for x in alice.messages(c["id"])["data"]]
    assert count(conversation_id=c["id"]) == 3  # soft-deleted rows stay


def test_a_listed_message_is_listed_as_it_is_after_each_change(alice: Coze) -> None:
    """The list serves the messages it read before (kept, and their wire form with them) only
    while unchanged: after a modify or a delete it answers what retrieve answers."""
    c = alice.create()
    first, second = alice.add(c["id"], content="one"), alice.add(c["id"], content="two")
    assert alice.messages(c["id"])["data"] == [second, first]
    assert alice.messages(c["id"])["data"] == [second, first]  # from what the first list kept
    ids = {"conversation_id": c["id"], "message_id": first["id"]}
    modify = "/v1/conversation/message/modify"
    alice.ok("POST", modify, {"content": "edited", "meta_data": {"m": "1"}}, params=ids)
    edited = alice.message(c["id"], first["id"])
    assert (edited["content"], edited["meta_data"]) == ("edited", {"m": "1"})
    assert alice.messages(c["id"])["data"] == [second, edited]
    alice.ok("POST", "/v1/conversation/message/delete", params=ids)
    assert alice.messages(c["id"])["data"] == [second]


def test_feedback_create_and_delete(alice: Coze) -> None:
    c = alice.create()
    m = alice.add(c["id"], role="assistant", content="answer")
    path = f"/v1/conversations/{c['id']}/messages/{m['id']}/feedback"
    body = {"feedback_type": "like", "reason_types": ["r"], "comment": "c"}
    assert alice.ok("POST", path, body)["data"] == {}
    assert alice.ok("POST", path, {"feedback_type": "unlike"})["data"] == {}
    assert alice.ok("DELETE", path)["data"] == {}
    alice.error("POST", path, {"feedback_type": "meh"}, code=4000, status=400)
    alice.error("POST", path, {"feedback_type": "like", "reason_types": "r"}, code=4000, status=400)
    alice.error("POST", path, {}, code=4000, status=400)
    missing = f"/v1/conversations/{c['id']}/messages/{int(m['id']) + 999}/feedback"
    alice.error("POST", missing, {"feedback_type": "like"}, code=4005, status=404)
    alice.error("DELETE", missing, code=4005, status=404)
    alice.error(
        "POST",
        f"/v1/conversations/{c['id']}/messages/abc/feedback",
        {"feedback_type": "like"},
        code=4000,
        status=400,
    )


def _walk(alice: Coze, cid: str, order: str, limit: int) -> tuple[list[list[str]], Body]:
    """Pages as cozepy's iteration asks for them: after_id = the previous last_id."""
    pages: list[list[str]] = []
    page = alice.messages(cid, order=order, limit=limit)
    while True:
        pages.append([m["id"] for m in page["data"]])
        if not page["has_more"]:
            return pages, page
        page = alice.messages(cid, order=order, limit=limit, after_id=page["last_id"])


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_message_paging_walks_every_message_once_both_ways(alice: Coze, order: str) -> None:
    c = alice.create()
    created = [
        alice.add(c["id"], role=("user", "assistant")[i % 2], content=str(i))["id"]
        for i in range(7)
    ]
    expected = created if order == "asc" else created[::-1]

    whole = alice.messages(c["id"], order=order)
    assert [m["id"] for m in whole["data"]] == expected and whole["has_more"] is False

    pages, last = _walk(alice, c["id"], order, 3)
    assert pages == [expected[0:3], expected[3:6], expected[6:7]]
    assert [i for p in pages for i in p] == expected

    # Back from the last page: before_id = the current first_id, until has_more is false.
    back: list[list[str]] = []
    first_id = last["first_id"]
    while True:
        page = alice.messages(c["id"], order=order, limit=3, before_id=first_id)
        back.insert(0, [m["id"] for m in page["data"]])
        first_id = page["first_id"]
        if not page["has_more"]:
            break
    assert [i for p in back for i in p] == expected[:6]
    assert back == [expected[0:3], expected[3:6]]

    # An exact multiple of the limit: the last full page says there is no more.
    pages, _ = _walk(alice, c["id"], order, 7)
    assert pages == [expected]


def test_message_list_filters_and_defaults(alice: Coze) -> None:
    c = alice.create()
    only = alice.add(c["id"])
    # cozepy's defaults, and a body-less list (curl) both list newest first.
    assert [m["id"] for m in alice.messages(c["id"])["data"]] == [only["id"]]
    raw = alice.call("POST", "/v1/conversation/message/list", params={"conversation_id": c["id"]})
    assert [m["id"] for m in expect_ok(raw)["data"]] == [only["id"]]
    empty = alice.messages(c["id"], chat_id="no-such-chat")
    assert (empty["data"], empty["first_id"], empty["last_id"], empty["has_more"]) == (
        [],
        "",
        "",
        False,
    )


@pytest.mark.parametrize(
    "body",
    [
        {"order": "sideways"},
        {"order": 1},
        {"limit": 0},
        {"limit": 51},
        {"limit": "10"},
        {"limit": 10.0},
        {"limit": True},
        {"before_id": "abc"},
        {"after_id": "-1"},
        {"after_id": 1.5},
        {"after_id": "99999999999999999999"},
        {"chat_id": ["c"]},
        {"chat_id": "c\x00"},  # NUL: refused on both engines, not a PostgreSQL 500 (schemathesis)
    ],
)
def test_message_list_refuses_bad_bodies(alice: Coze, body: Body) -> None:
    c = alice.create()
    path = "/v1/conversation/message/list"
    alice.error("POST", path, body, params={"conversation_id": c["id"]}, code=4000, status=400)


@pytest.mark.parametrize(
    "body",
    [
        {"role": "system", "content": "x", "content_type": "text"},
        {"role": "user", "content_type": "text"},
        {"content": "x", "content_type": "text"},
        {"role": "user", "content": 1, "content_type": "text"},
        {"role": "user", "content": "x", "content_type": "card"},
        {"role": "user", "content": "not json", "content_type": "object_string"},
        {"role": "user", "content": "x", "content_type": "text", "meta_data": []},
        {"role": "user", "content": "x", "content_type": "text", "meta_data": {"a": 1}},
        {"role": "user", "content": "x" * 100_001, "content_type": "text"},
        [],
    ],
)
def test_message_create_refuses_bad_bodies_and_writes_nothing(
    alice: Coze, count: Callable[..., int], body: Any
) -> None:
    c = alice.create()
    path = "/v1/conversation/message/create"
    alice.error("POST", path, body, params={"conversation_id": c["id"]}, code=4000, status=400)
    assert count(conversation_id=c["id"]) == 0


def test_message_meta_data_limits_are_4003(alice: Coze, count: Callable[..., int]) -> None:
    c = alice.create()
    path = "/v1/conversation/message/create"
    for meta in ({str(i): "v" for i in range(17)}, {"k" * 65: "v"}, {"k": "v" * 513}, {"k": ""}):
        body = {"role": "user", "content": "x", "content_type": "text", "meta_data": meta}
        alice.error("POST", path, body, params={"conversation_id": c["id"]}, code=4003, status=400)
    assert count(conversation_id=c["id"]) == 0
    assert alice.add(c["id"], meta_data={str(i): "v" for i in range(16)})["meta_data"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"conversation_id": ""},
        {"conversation_id": "abc"},
        {"conversation_id": "-5"},
        {"conversation_id": "0"},
        {"conversation_id": "99999999999999999999"},
        {"conversation_id": ["1", "2"]},
    ],
)
def test_bad_conversation_ids_are_4000(alice: Coze, params: dict[str, Any]) -> None:
    alice.error("GET", "/v1/conversation/retrieve", params=params, code=4000, status=400)


def test_unknown_ids_are_4002_and_4005(alice: Coze) -> None:
    c = alice.create()
    unknown = str(int(c["id"]) + 10_000)
    alice.error(
        "GET",
        "/v1/conversation/retrieve",
        params={"conversation_id": unknown},
        code=4002,
        status=404,
    )
    alice.error(
        "GET",
        "/v1/conversation/message/retrieve",
        params={"conversation_id": c["id"], "message_id": unknown},
        code=4005,
        status=404,
    )
    alice.error(
        "GET",
        "/v1/conversation/message/retrieve",
        params={"conversation_id": c["id"], "message_id": "x"},
        code=4000,
        status=400,
    )
    alice.error("PUT", "/v1/conversations/abc", {"name": "x"}, code=4000, status=400)
    alice.error("DELETE", f"/v1/conversations/{unknown}", code=4002, status=404)


# --- bad bodies write nothing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b'{"name":', 4000),
        (b"not json", 4000),
        (b"[]", 4000),
        (b'"name"', 4000),
        (b'{"name": NaN}', 4000),
        (b'{"name": 5}', 4000),
        (b'{"name": "' + b"x" * 101 + b'"}', 4000),
        (b'{"name": "\xff"}', 4000),
        (b'{"bot_id": 1.5}', 4000),
        (b'{"bot_id": true}', 4000),
        (b'{"connector_id": {}}', 4000),
        (b'{"meta_data": []}', 4000),
        (b'{"meta_data": "k=v"}', 4000),
        (b'{"meta_data": {"k": 1}}', 4000),
        (b'{"meta_data": {"k": null}}', 4000),
        (b'{"messages": {}}', 4000),
        (b'{"messages": ["hi"]}', 4000),
        (b'{"messages": [{"content": "no role"}]}', 4000),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', 4000),
        (json.dumps({"meta_data": {str(i): "v" for i in range(17)}}).encode(), 4003),
        (json.dumps({"meta_data": {"k" * 65: "v"}}).encode(), 4003),
        (json.dumps({"meta_data": {"k": "v" * 513}}).encode(), 4003),
        (
            json.dumps(
                {"messages": [{"role": "user", "content": "x", "meta_data": {"k" * 65: "v"}}]}
            ).encode(),
            4003,
        ),
        (b"[" * 5000 + b"]" * 5000, 4000),
    ],
)
def test_bad_create_bodies_write_nothing(
    alice: Coze, tenant: Tenant, count: Callable[..., int], raw: bytes, code: int
) -> None:
    response = alice.call(
        "POST", "/v1/conversation/create", raw=raw, headers={"Content-Type": "application/json"}
    )
    expect_error(response, code, 400)
    assert count(app_id=tenant.app_id) == 0


def test_oversized_body_is_413_and_writes_nothing(
    alice: Coze, tenant: Tenant, count: Callable[..., int]
) -> None:
    raw = json.dumps({"name": "x", "pad": "p" * (1 << 20)}).encode()
    expect_error(alice.call("POST", "/v1/conversation/create", raw=raw), 4000, 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is only known while reading
        for start in range(0, len(raw), 65536):
            yield raw[start : start + 65536]

    response = alice.call("POST", "/v1/conversation/create", raw=cast(bytes, chunks()))
    assert "content-length" not in response.request.headers
    expect_error(response, 4000, 413)
    assert count(app_id=tenant.app_id) == 0


# --- routes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/",
        "/v1/nowhere",
        "/v1/conversation",
        "/v1/conversation/create/",
        "/v1/conversations/",
        "/v1/conversations//clear",
        "/v1/conversations/1/clear/now",
        "/v1/conversations/1/messages/2",
        "/v1/chat",
    ],
)
def test_unknown_routes_are_4200_even_without_a_token(alice: Coze, path: str) -> None:
    alice.error("POST", path, {}, code=4200, status=404)
    response = alice.http.get(path)
    expect_error(response, 4200, 404)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/conversation/create"),
        ("POST", "/v1/conversation/retrieve"),
        ("POST", "/v1/conversations"),
        ("GET", "/v1/conversations/1"),
        ("PATCH", "/v1/conversations/1"),
        ("POST", "/v1/conversations/1"),
        ("GET", "/v1/conversations/1/clear"),
        ("GET", "/v1/conversation/message/list"),
        ("GET", "/v1/conversation/message/modify"),
        ("DELETE", "/v1/conversation/message/delete"),
        ("PUT", "/v1/conversations/1/messages/2/feedback"),
    ],
)
def test_wrong_methods_are_4000_with_405(alice: Coze, method: str, path: str) -> None:
    alice.error(method, path, code=4000, status=405)


# --- authentication, permissions, isolation -------------------------------------------------------


@pytest.fixture(scope="module")
def uncached_server(database_url: str) -> Iterator[LiveServer]:
    """A server whose access cache expires at once: a revoked token is refused at once."""
    settings = Settings(
        database_url=database_url,
        rate_limits=parse_rate_limits(NO_LIMITS),
        access_cache_seconds=0,
    )
    with LiveServer(settings) as live:
        yield live


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer  pat_x",
        "Bearer pat_x extra",
        "Bearer pat_not_a_real_token",
        "pat_not_a_real_token",
    ],
)
def test_missing_or_bad_tokens_are_4100(
    alice: Coze, tenant: Tenant, count: Callable[..., int], authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = alice.http.post("/v1/conversation/create", content=b"{}", headers=headers)
    expect_error(response, 4100, 401)
    assert count(app_id=tenant.app_id) == 0


def test_lowercase_bearer_is_accepted(alice: Coze) -> None:
    response = alice.http.post(
        "/v1/conversation/create", content=b"{}", headers={"Authorization": f"bearer {alice.token}"}
    )
    expect_ok(response)


def test_revoked_token_is_4100_at_once(
    uncached_server: LiveServer, engine: Engine, tenant: Tenant
) -> None:
    make, made = _factory(uncached_server, engine, tenant)
    try:
        carol = make("carol")
        c = carol.create()
        tokens = admin.list_tokens(engine, tenant.account)
        admin.revoke_token(engine, cast(int, tokens[-1]["id"]))
        carol.error(
            "GET",
            "/v1/conversation/retrieve",
            params={"conversation_id": c["id"]},
            code=4100,
            status=401,
        )
    finally:
        for c in made:
            c.close()


def test_expired_token_is_4100(client: ClientFactory) -> None:
    dave = client("dave", expires_in=2)  # whole seconds from a truncated now: 1 to 2 s of life
    c = dave.create()
    time.sleep(3.1)
    dave.error(
        "GET",
        "/v1/conversation/retrieve",
        params={"conversation_id": c["id"]},
        code=4100,
        status=401,
    )


def test_token_of_a_disabled_account_is_4100(
    uncached_server: LiveServer, engine: Engine, database_url: str
) -> None:
    other = new_tenant(database_url)
    make, made = _factory(uncached_server, engine, other)
    try:
        erin = make("erin")
        erin.create()
        admin.set_account_status(engine, other.account, EntityStatus.DISABLED)
        erin.error("POST", "/v1/conversation/create", {}, code=4100, status=401)
    finally:
        for c in made:
            c.close()


def test_token_without_the_permission_is_4101_and_changes_nothing(
    alice: Coze, client: ClientFactory, tenant: Tenant, count: Callable[..., int]
) -> None:
    c = alice.create(name="kept")
    m = alice.add(c["id"])
    reader = client(
        "alice",
        permissions=[Permission.RETRIEVE_CONVERSATION, Permission.LIST_MESSAGE],
    )
    assert reader.retrieve(c["id"]) == alice.retrieve(c["id"])
    path = f"/v1/conversations/{c['id']}"
    reader.error("PUT", path, {"name": "renamed"}, code=4101, status=403)
    reader.error("DELETE", path, code=4101, status=403)
    reader.error("POST", f"{path}/clear", code=4101, status=403)
    reader.error("POST", "/v1/conversation/create", {}, code=4101, status=403)
    reader.error("GET", "/v1/conversations", params={"bot_id": "b"}, code=4101, status=403)
    ids = {"conversation_id": c["id"], "message_id": m["id"]}
    reader.error(
        "POST",
        "/v1/conversation/message/create",
        {"role": "user", "content": "x", "content_type": "text"},
        params={"conversation_id": c["id"]},
        code=4101,
        status=403,
    )
    reader.error("GET", "/v1/conversation/message/retrieve", params=ids, code=4101, status=403)
    reader.error(
        "POST",
        "/v1/conversation/message/modify",
        {"content": "x", "content_type": "text"},
        params=ids,
        code=4101,
        status=403,
    )
    reader.error("POST", "/v1/conversation/message/delete", params=ids, code=4101, status=403)
    reader.error(
        "POST",
        f"{path}/messages/{m['id']}/feedback",
        {"feedback_type": "like"},
        code=4101,
        status=403,
    )
    assert reader.messages(c["id"])["data"] == [m]
    after = alice.retrieve(c["id"])
    assert after == c
    assert count(app_id=tenant.app_id) == 1
    nobody = client("alice", permissions=[])
    nobody.error("POST", "/v1/conversation/create", {}, code=4101, status=403)
    assert set(ALL_PERMISSIONS) == {p.value for p in Permission}


def test_another_users_conversation_is_4002_and_untouched(
    alice: Coze, client: ClientFactory, database_url: str
) -> None:
    c = alice.create(name="mine", bot_id="bot-x")
    m = alice.add(c["id"])
    section = c["last_section_id"]
    stranger = client("mallory")
    outsider = client("alice", of=new_tenant(database_url))  # same user name, other account
    path = f"/v1/conversations/{c['id']}"
    ids = {"conversation_id": c["id"], "message_id": m["id"]}
    for other in (stranger, outsider):
        other.error(
            "GET",
            "/v1/conversation/retrieve",
            params={"conversation_id": c["id"]},
            code=4002,
            status=404,
        )
        other.error("PUT", path, {"name": "theirs"}, code=4002, status=404)
        other.error("DELETE", path, code=4002, status=404)
        other.error("POST", f"{path}/clear", code=4002, status=404)
        other.error(
            "POST",
            "/v1/conversation/message/create",
            {"role": "user", "content": "x", "content_type": "text"},
            params={"conversation_id": c["id"]},
            code=4002,
            status=404,
        )
        other.error(
            "POST",
            "/v1/conversation/message/list",
            {},
            params={"conversation_id": c["id"]},
            code=4002,
            status=404,
        )
        other.error("GET", "/v1/conversation/message/retrieve", params=ids, code=4002, status=404)
        other.error(
            "POST",
            "/v1/conversation/message/modify",
            {"content": "x", "content_type": "text"},
            params=ids,
            code=4002,
            status=404,
        )
        other.error("POST", "/v1/conversation/message/delete", params=ids, code=4002, status=404)
        other.error(
            "POST",
            f"{path}/messages/{m['id']}/feedback",
            {"feedback_type": "like"},
            code=4002,
            status=404,
        )
        other.error("DELETE", f"{path}/messages/{m['id']}/feedback", code=4002, status=404)
        assert other.list("bot-x")["conversations"] == []
    kept = alice.retrieve(c["id"])
    assert kept["name"] == "mine" and kept["last_section_id"] == section
    assert alice.messages(c["id"])["data"] == [m]


# --- rate limits and internal errors --------------------------------------------------------------


@pytest.fixture(scope="module")
def limited_server(database_url: str) -> Iterator[LiveServer]:
    limits = {**parse_rate_limits(NO_LIMITS), "coze:CreateConversation": 1}
    with LiveServer(Settings(database_url=database_url, rate_limits=limits)) as live:
        yield live


def test_rate_limit_is_4008_with_429(
    limited_server: LiveServer, engine: Engine, tenant: Tenant, count: Callable[..., int]
) -> None:
    make, made = _factory(limited_server, engine, tenant)
    try:
        frank = make("frank")
        answers = [frank.call("POST", "/v1/conversation/create", {}) for _ in range(3)]
        refused = [r for r in answers if r.status_code == 429]
        assert refused, [r.status_code for r in answers]
        for response in refused:
            expect_error(response, 4008, 429)
            assert response.headers["retry-after"] == "1"  # limits count per second
        assert count(app_id=tenant.app_id) == 3 - len(refused)
        # Other operations are not limited by it.
        frank.ok("GET", "/v1/conversations", params={"bot_id": "b"})
    finally:
        for c in made:
            c.close()


class _Access:
    async def token_caller(self, raw_token: str) -> Caller:
        return Caller.token(1, user="u", app_id=1, permissions=ALL_PERMISSIONS)


class _Limiter:
    async def acquire(self, account_id: int, operation: str) -> None:
        return None


class _Broken:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def get_conversation(self, caller: Caller, app_id: int, conversation_id: int) -> Any:
        raise self.error


def _call_in_process(app: CozeDialect, path: str, query: bytes) -> tuple[int, dict[str, str], Body]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [(b"authorization", b"Bearer t")],
    }
    asyncio.run(app(scope, receive, send))
    start, body = sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, json.loads(body["body"])


def _dialect(conversations: Any) -> CozeDialect:
    policy = Policy(db=cast(Any, None), clock=time.time)
    return CozeDialect(
        services=Services(policy, conversations, *(cast(Any, None),) * 3),
        authenticator=cast(Any, _Access()),
        limiter=_Limiter(),
        max_body_bytes=1024,
    )


def test_unexpected_errors_are_5000_without_details(caplog: pytest.LogCaptureFixture) -> None:
    app = _dialect(_Broken(RuntimeError("secret detail")))
    with caplog.at_level(logging.ERROR, logger="convhub.dialects.coze.app"):
        status, headers, payload = _call_in_process(
            app, "/v1/conversation/retrieve", b"conversation_id=1"
        )
    assert status == 500
    assert payload == {
        "code": 5000,
        "msg": "internal error",
        "detail": {"logid": headers["x-tt-logid"]},
    }
    assert "secret" not in json.dumps(payload)
    assert any(r.exc_info and "secret detail" in str(r.exc_info[1]) for r in caplog.records)


def test_an_error_without_a_message_still_has_a_msg() -> None:
    app = _dialect(_Broken(ConvhubError(ErrorCode.CONVERSATION_NOT_FOUND, "")))
    status, _, payload = _call_in_process(app, "/v1/conversation/retrieve", b"conversation_id=1")
    assert status == 404
    assert payload["code"] == 4002 and payload["msg"]


# --- one core for both dialects -------------------------------------------------------------------


def test_a_token_for_user_0010001_sees_what_volcengine_user_10001_created(
    client: ClientFactory, volc: VolcClient, tenant: Tenant
) -> None:
    made = volc.ok(
        "CreateConversation",
        {
            "AppId": tenant.app_id,
            "OwnerUserId": 10001,
            "ConversationCoreInfo": {"ConversationType": 2, "Name": "from volc"},
        },
    )
    token_user = client("0010001")
    assert token_user.retrieve(str(made["ConversationShortId"]))["name"] == "from volc"


def test_a_pair_whose_single_chat_a_token_tried_to_delete_can_still_chat(
    client: ClientFactory, volc: VolcClient, tenant: Tenant
) -> None:
    pair = {
        "AppId": tenant.app_id,
        "OwnerUserId": 10001,
        "OtherUserId": 10002,
        "ConversationCoreInfo": {"ConversationType": 1},
    }
    first = volc.ok("CreateConversation", pair)
    conversation_id = first["ConversationShortId"]
    owner = client("10001")
    # A single chat is never dissolved, by either dialect (volcengine-im.md §7.3).
    owner.error("DELETE", f"/v1/conversations/{conversation_id}", code=4000, status=400)
    again = volc.ok("CreateConversation", pair)
    assert again["Exist"] is True and again["ConversationShortId"] == conversation_id
    assert again["ConversationInfo"]["Status"] == 0
    volc.ok(
        "ModifyConversation",
        {
            "AppId": tenant.app_id,
            "ConversationCoreInfo": {"ConversationShortId": conversation_id, "Name": "still ours"},
        },
    )


def test_a_coze_conversation_is_a_group_its_creator_owns_and_belongs_to(
    client: ClientFactory, volc: VolcClient, tenant: Tenant
) -> None:
    made = client("20001").create(name="with a bot")
    conversation_id = int(made["id"])
    body = {"AppId": tenant.app_id, "ConversationShortId": conversation_id}
    scan = volc.ok("ScanConversationParticipantList", {**body, "Cursor": 0, "Limit": 5})
    assert [(p["ParticipantUserId"], p["Role"]) for p in scan["Participants"]] == [(20001, 1)]
    assert volc.ok("GetConversationUserCount", body) == {"Count": 1}
    listed = volc.ok(
        "GetUserConversations",
        {"AppId": tenant.app_id, "ParticipantUserId": 20001, "Cursor": 0, "Limit": 20},
    )
    assert [c["ConversationShortId"] for c in listed["ConversationInfos"]] == [conversation_id]
    (info,) = listed["ConversationInfos"]
    assert (info["ConversationType"], info["OwnerUserId"], info["MemberCount"]) == (2, 20001, 1)
