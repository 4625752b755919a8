"""schemathesis drives a live server from the generated OpenAPI documents, on both dialects and
both engines: every operation gets the coverage phase (boundary values, wrong types, missing
fields, other methods) and seeded fuzzing, valid and invalid cases alike. No answer may be a 5xx;
every answer must have a documented status, content type, headers and schema (the error envelopes
included); and invalid input must be refused, so that a document promises no less than the server
accepts. The shared ``server`` fixture runs without rate limits.

A fuzzer that names random apps, conversations and users never gets past the first lookup, so
each operation starts with a small world of its own (an app, conversations, members, messages)
and ``steer`` points the known fields of the valid parts of a case at it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NotSet
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from convhub.openapi.coze import coze_document
from convhub.openapi.volcengine import volcengine_document
from convhub.wire.signing import sign_headers
from tests.support import LiveServer, Tenant, VolcClient, new_tenant, new_token


def invalid_input_is_rejected(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis's ``negative_data_rejection`` (the documents must not promise less than the
    server accepts), less the cases whose only negative part is an optional body it then left
    out: those send nothing invalid."""
    assert case.meta is not None
    negative = {where for where, c in case.meta.components.items() if c.mode.is_negative}
    if negative == {ParameterLocation.BODY} and isinstance(case.body, NotSet):
        return None
    return negative_data_rejection(ctx, response, case)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    invalid_input_is_rejected,
]
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261201,
        "generation": {
            "max-examples": 20,
            "mode": "all",
            "deterministic": True,
            "with-security-parameters": False,  # each test authenticates its own requests
            "dictionaries": {"string": {"dictionary": "awkward", "probability": 0.2}},
        },
        # Strings that storage and lookups must survive: PostgreSQL text cannot hold NUL.
        "dictionaries": {"awkward": {"values": ["\x00", "a\x00b", " ", "\u00e9\u4e2d\U0001f600"]}},
    }
)
VOLCENGINE = schemathesis.openapi.from_dict(volcengine_document(), config=CONFIG)
COZE = schemathesis.openapi.from_dict(coze_document(), config=CONFIG)

# Each operation's world is made once for all of its examples, which only add to it.
WORLD_PER_OPERATION = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

USERS = [1001, 1002, 1003, 1004]
_USER_FIELDS = (
    *("OwnerUserId", "OtherUserId", "ParticipantUserId", "Sender", "Operator"),
    *("ParticipantUserIds", "MentionedUsers", "VisibleUsers", "InvisibleUsers"),
)

Known = dict[str, list[Any]]


class Signed(requests.auth.AuthBase):
    """Signs each request as it will be sent (raw query, headers, body), with the signer
    ``convhub.client`` uses."""

    def __init__(self, tenant: Tenant, host: str) -> None:
        self.tenant, self.host = tenant, host

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        request.headers["Host"] = self.host
        request.headers.update(
            sign_headers(
                method=str(request.method),
                query_string=urlsplit(str(request.url)).query.encode(),
                headers=request.headers,
                body=body.encode() if isinstance(body, str) else body,
                access_key=self.tenant.access_key,
                secret_key=self.tenant.secret_key,
                region="cn-north-1",
                service="rtc",
                now=time.time(),
            )
        )
        return request


@dataclass(frozen=True)
class World:
    tenant: Tenant
    known: Known  # field name -> values that name something that exists
    token: str = ""


@pytest.fixture
def volcengine_world(server: LiveServer, database_url: str) -> World:
    """A group, a live group and a single chat of user 1001, each with two messages."""
    tenant = new_tenant(database_url)
    volc = VolcClient(server, tenant)
    app = tenant.app_id
    conversations, messages = [], []
    for kind, other in ((2, {}), (100, {}), (1, {"OtherUserId": 1002})):
        created = volc.ok("CreateConversation", {"AppId": app, "OwnerUserId": 1001,
                          "ConversationCoreInfo": {"ConversationType": kind}, **other})  # fmt: skip
        conversation = created["ConversationShortId"]
        conversations.append(conversation)
        if kind != 1:
            members = [{"ParticipantUserId": u} for u in USERS[1:3]]
            volc.ok("BatchAddConversationParticipant", {"AppId": app, "Operator": 1001,
                    "ConversationShortId": conversation, "ParticipantInfos": members})  # fmt: skip
        for sender in USERS[:2]:
            sent = volc.ok("SendMessage", {"AppId": app, "ConversationShortId": conversation,
                           "Sender": sender, "MsgType": 1, "Content": "hello"})  # fmt: skip
            messages.append(sent["MessageId"])
    volc.close()
    known: Known = {
        "AppId": [app],
        "ConversationShortId": conversations,
        "MessageId": messages,
        "MessageIds": messages,
        "ReferencedMessageId": messages,
        "Cursor": [0],
        "Limit": [1, 20, 100],
        # Enumerations the declarations only describe (MarkAction 0 means add, Reverse any other
        # value 0: the documents cannot promise a refusal)
        "MarkAction": [1, 2],
        "Reverse": [0, 1],
    }
    for name in _USER_FIELDS:
        known[name] = USERS
        known[name + "Str"] = [str(u) for u in USERS]
    return World(tenant, known)


@pytest.fixture
def coze_world(server: LiveServer, database_url: str) -> World:
    """A conversation of the token's user with three messages."""
    tenant = new_tenant(database_url)
    token = new_token(database_url, tenant.account, user="1001")
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        created = http.post("/v1/conversation/create", json={"bot_id": "bot",
                            "messages": [{"role": "user", "content": "hello"}]})  # fmt: skip
        conversation = created.json()["data"]["id"]
        messages = [
            http.post("/v1/conversation/message/create", params={"conversation_id": conversation},
                      json={"role": role, "content": "hello"}).json()["data"]["id"]
            for role in ("user", "assistant", "user")
        ]  # fmt: skip
    ids = [int(m) for m in messages]
    known: Known = {
        "conversation_id": [int(conversation)],
        "message_id": ids,
        "before_id": ids,
        "after_id": ids,
        "bot_id": ["bot"],
        "limit": [1, 20],
        # Enumerations the declarations only describe ("" is text, and the orders are read
        # whatever their case: the documents cannot promise a refusal)
        "content_type": ["text", "object_string"],
        "order": ["asc", "desc"],
        "sort_order": ["ASC", "DESC"],
    }
    return World(tenant, known, token)


def steer(value: Any, known: Known) -> Any:
    """``value`` with the values of known fields replaced by ones that exist.

    JSON Schema counts ``3.0`` as an integer and the generator sends such numbers; the server
    refuses them as the documents say, so a valid part writes them as integers."""
    if isinstance(value, list):
        return [steer(v, known) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if not isinstance(value, dict):
        return value
    steered = {}
    for key, item in value.items():
        item = steer(item, known)
        choices = known.get(key)
        if choices and isinstance(item, list):
            item = [_pick(v, choices) for v in item]
        elif choices:
            item = _pick(item, choices)
        steered[key] = item
    return steered


def _pick(value: Any, choices: list[Any]) -> Any:
    """One of ``choices``, chosen by the generated value (so that shrinking still works)."""
    if type(value) is int:
        return choices[value % len(choices)]
    if type(value) is str:
        return choices[len(value) % len(choices)]
    return value


def _steer_case(case: Case, known: Known) -> None:
    """Steer the valid parts of fuzzing cases and of negative coverage cases (so that the invalid
    part meets its check, not a 404 for a random conversation); the coverage phase's valid cases
    keep their boundary values, which name nothing that exists."""
    assert case.meta is not None
    phase, mode = case.meta.phase.name, case.meta.generation.mode
    if phase not in ("fuzzing", "coverage") or (phase == "coverage" and mode == "positive"):
        return
    negative = {where for where, c in case.meta.components.items() if c.mode.is_negative}
    if ParameterLocation.BODY not in negative:
        case.body = steer(case.body, known)
    if case.query and ParameterLocation.QUERY not in negative:
        case.query = steer(case.query, known)
    if case.path_parameters and ParameterLocation.PATH not in negative:
        case.path_parameters = steer(case.path_parameters, known)


@VOLCENGINE.parametrize()
@WORLD_PER_OPERATION
def test_volcengine(case: Case, server: LiveServer, volcengine_world: World) -> None:
    _steer_case(case, volcengine_world.known)
    response = case.call(
        base_url=server.base_url, auth=Signed(volcengine_world.tenant, server.host)
    )
    assert response.status_code != 401, response.text  # documented, but this test signs all
    case.validate_response(response, checks=CHECKS)


@COZE.parametrize()
@WORLD_PER_OPERATION
def test_coze(case: Case, server: LiveServer, coze_world: World) -> None:
    _steer_case(case, coze_world.known)
    bearer = {"Authorization": f"Bearer {coze_world.token}"}
    response = case.call(base_url=server.base_url, headers=bearer)
    assert response.status_code != 401, response.text  # documented, but the token is good
    case.validate_response(response, checks=CHECKS)
