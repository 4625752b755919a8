"""End to end: the official Node SDKs drive a running convhub.

``@volcengine/openapi`` (its generic ``Service.createJSONAPI``) and ``@coze/api`` (``CozeAPI``),
pinned in tests/e2e/node/package.json, run as Node scripts in tests/e2e/node against a live server
on both storage engines. Each script takes its parameters from the environment and prints one JSON
line of what the SDK returned and what it sent (read from Node's http client); the tests assert on
that line and, where the SDK cannot see exactly (int64 beyond 2**53), on raw HTTP answers.

Node and the scripts' node_modules are required: without them these tests fail, never skip.
``make test`` installs them (``npm ci --prefix tests/e2e/node ...``, see the Makefile).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support import LiveServer, Tenant, VolcClient, new_token

NODE_DIR = Path(__file__).parent / "node"
INSTALL_HINT = (
    "run the install step: `make test` does it, or `npm ci --prefix tests/e2e/node --no-audit "
    "--no-fund --ignore-scripts` (Node 20+ and npm)"
)
BOT = "7390000000000000001"
USER = "node-user"
TWO_53 = 1 << 53
BEYOND_2_53 = TWO_53 + 1
SCRIPT_TIMEOUT = 60
MIN_NODE = 20
# Proxies would take the SDKs' requests to 127.0.0.1 elsewhere (both SDKs use axios, which reads
# them); VOLC_* are @volcengine/openapi's ambient credentials and its own proxy setting.
PROXY_ENV = {"http_proxy", "https_proxy", "all_proxy"}


def pinned_versions() -> dict[str, str]:
    manifest = json.loads((NODE_DIR / "package.json").read_text())
    dependencies: dict[str, str] = manifest["dependencies"]
    return dependencies


def node_executable() -> str:
    """The node binary, after checking that the pinned SDKs are installed; fails loudly if not."""
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            f"node is not on PATH: install Node.js 20+ and npm, then {INSTALL_HINT}", pytrace=False
        )
    node_version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if (
        not re.fullmatch(r"v\d+\..*", node_version)
        or int(node_version[1:].split(".")[0]) < MIN_NODE
    ):
        pytest.fail(
            f"node {node_version!r} is too old: these tests need Node.js {MIN_NODE}+", pytrace=False
        )
    for package, version in pinned_versions().items():
        installed = NODE_DIR / "node_modules" / package / "package.json"
        if not installed.is_file():
            pytest.fail(
                f"{package} is not installed in {NODE_DIR}/node_modules; {INSTALL_HINT}",
                pytrace=False,
            )
        found = json.loads(installed.read_text())["version"]
        if found != version:
            pytest.fail(
                f"{package} {found} is installed but package.json pins {version}; {INSTALL_HINT}",
                pytrace=False,
            )
    return node


def run_script(script: str, **params: str) -> dict[str, Any]:
    """Run tests/e2e/node/<script> with ``params`` in its environment; its one JSON line."""
    node = node_executable()
    env = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in PROXY_ENV and not name.startswith("VOLC_")
    }
    env.update(params)
    completed = subprocess.run(
        [node, script],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )
    lines = completed.stdout.strip().splitlines()
    assert completed.returncode == 0 and lines, (
        f"{script} exited with {completed.returncode}\n"
        f"stdout: {completed.stdout}\nstderr: {completed.stderr}"
    )
    observed: dict[str, Any] = json.loads(lines[-1])
    return observed


def test_pinned_sdks_are_installed() -> None:
    assert pinned_versions() == {"@coze/api": "1.3.9", "@volcengine/openapi": "1.36.2"}
    node_executable()


# --------------------------------------------------------------------------- @volcengine/openapi


def test_volcengine_openapi(server: LiveServer, tenant: Tenant, volc: VolcClient) -> None:
    seen = run_script(
        "volc.mjs",
        CONVHUB_BASE_URL=server.base_url,
        CONVHUB_AK=tenant.access_key,
        CONVHUB_SK=tenant.secret_key,
        CONVHUB_APP_ID=str(tenant.app_id),
    )

    # What went over the wire: every call signed with x-content-sha256;x-date only (no host).
    actions = [request["path"].split("&")[0] for request in seen["wire"]]
    assert actions == [
        "/?Action=CreateConversation",
        "/?Action=CreateConversation",
        "/?Action=ModifyConversation",
        "/?Action=BatchGetConversations",
        "/?Action=ModifyConversation",
        "/?Action=ModifyConversation",
        "/?Action=CreateConversation",
    ], seen["wire"]
    for request in seen["wire"]:
        assert request["method"] == "POST"
        assert request["path"].endswith("&Version=2020-12-01")
        assert request["authScheme"] == "HMAC-SHA256"
        assert request["signedHeaders"] == "x-content-sha256;x-date"
        assert request["host"] == server.host
        assert request["contentType"] == "application/json; charset=utf-8"
        assert request["userAgent"] == "volc-sdk-nodejs/v1.36.2"

    # CreateConversation, group: a plain object body, non-ASCII name and Ext round-trip.
    group = seen["group"]
    assert group["exist"] is False
    assert group["name"] == "node group 会话"
    assert group["ext"] == {"k": "v"}
    group_id = int(group["conversationId"])
    # JSON.parse turned the int64 ConversationShortId into the nearest double.
    assert group_id > TWO_53 and group["shortIdIsSafeInteger"] is False
    assert float(int(group["shortIdAsNumber"])) == float(group_id)

    # CreateConversation, single chat with an owner beyond 2**53 sent as raw JSON digits.
    single = seen["single"]
    single_id = int(single["conversationId"])
    assert single["exist"] is False and single["conversationType"] == 1
    assert single["ownerUserIdStr"] == str(BEYOND_2_53)  # the exact value, read from the twin
    assert single["ownerUserIdAsNumber"] == str(TWO_53)  # what JSON.parse made of OwnerUserId
    stored = volc.ok(
        "BatchGetConversations", {"AppId": tenant.app_id, "ConversationShortId": [single_id]}
    )
    assert stored["ConversationCoreInfos"][0]["OwnerUserId"] == BEYOND_2_53

    # ModifyConversation and BatchGetConversations with the exact IDs (BigInt → raw digits).
    assert seen["modify"] == {"rejected": False, "result": {}}
    batch = seen["batchGet"]
    assert batch["rejected"] is False
    assert batch["conversations"] == [
        {"conversationId": str(group_id), "name": "renamed by node", "conversationType": 2},
        {"conversationId": str(single_id), "name": "node single", "conversationType": 1},
    ]

    # Sending back the rounded number names another conversation, unless rounding was exact.
    naive = seen["naiveModify"]
    if int(group["shortIdAsNumber"]) != group_id:
        assert naive["error"]["Code"] == "ConversationNotFound", naive
    else:
        assert naive == {"rejected": False, "result": {}}
    fetched = volc.ok(
        "BatchGetConversations", {"AppId": tenant.app_id, "ConversationShortId": [group_id]}
    )
    expected_name = "renamed by node" if "error" in naive else "naive"
    assert fetched["ConversationCoreInfos"][0]["Name"] == expected_name

    # Errors: the SDK resolves with the envelope (it never rejects), Error holds Code and CodeN.
    assert seen["unknownModify"] == {
        "rejected": False,
        "hasResult": False,
        "error": {
            "Code": "ConversationNotFound",
            "CodeN": 1000002,
            "Message": "conversation 1 does not exist",
        },
    }
    wrong_secret = seen["wrongSecret"]
    assert wrong_secret["rejected"] is False and wrong_secret["hasResult"] is False
    assert wrong_secret["error"]["Code"] == "SignatureDoesNotMatch"
    assert wrong_secret["error"]["CodeN"] == 100010


# --------------------------------------------------------------------------- @coze/api


def test_coze_api(server: LiveServer, tenant: Tenant, database_url: str) -> None:
    seen = run_script(
        "coze.mjs",
        CONVHUB_BASE_URL=server.base_url,
        CONVHUB_COZE_TOKEN=new_token(database_url, tenant.account, user=USER),
        CONVHUB_BOT_ID=BOT,
    )
    for request in seen["wire"]:
        assert request["authScheme"] == "Bearer"
        assert request["host"] == server.host

    # create: every ID a string, values as sent.
    created = seen["created"]
    types = created.pop("types")
    for field in ("id", "last_section_id", "creator_id", "connector_id", "bot_id", "name"):
        assert types[field] == "string", (field, types)
    assert types["created_at"] == "number" and types["meta_data"] == "object"
    conversation_id = created["id"]
    assert conversation_id.isdigit() and int(conversation_id) > TWO_53
    assert created["name"] == "node chat"
    assert created["meta_data"] == {"topic": "support", "lang 语言": "中文 ✓"}
    assert created["bot_id"] == BOT and created["creator_id"] == USER

    # retrieve, update (rename), list.
    assert seen["retrieved"] == created
    updated = seen["updated"]  # the raw {code, data} answer of client.put()
    assert updated["code"] == 0
    assert updated["data"] == seen["afterUpdate"]
    unchanged = {k: v for k, v in created.items() if k not in ("name", "updated_at")}
    assert seen["afterUpdate"] == {
        **unchanged,
        "name": "renamed by node",
        "updated_at": seen["afterUpdate"]["updated_at"],
    }
    assert seen["listed"] == {
        "has_more": False,
        "conversations": [{"id": conversation_id, "name": "renamed by node"}],
    }

    # messages: create, list, update.
    messages = seen["messages"]
    first, second = messages["created"]
    for message, role, content, meta in (
        (first, "user", "hello from node", {"n": "1"}),
        (second, "assistant", "hi, node", {}),
    ):
        for field in ("id", "conversation_id", "section_id", "role", "content", "content_type"):
            assert message["types"][field] == "string", (field, message["types"])
        assert message["id"].isdigit()
        assert message["conversation_id"] == conversation_id
        assert message["section_id"] == created["last_section_id"]
        assert (message["role"], message["content"]) == (role, content)
        assert message["content_type"] == "text" and message["meta_data"] == meta
    assert messages["list"] == {
        "ids": [first["id"], second["id"]],
        "contents": ["hello from node", "hi, node"],
        "roles": ["user", "assistant"],
        "first_id": first["id"],
        "last_id": second["id"],
        "has_more": False,
    }
    assert messages["edited"] == {"id": first["id"], "content": "edited by node"}

    # clear: a new context section, messages kept.
    cleared = seen["cleared"]
    assert cleared["conversation_id"] == conversation_id
    assert cleared["id"].isdigit() and cleared["id"] != created["last_section_id"]
    assert seen["afterClear"] == {"last_section_id": cleared["id"]}
    assert seen["afterClearMessages"] == {"ids": [first["id"], second["id"]]}

    # delete, then it is gone (4002); an invalid token is 4100.
    assert seen["deleted"] == {"code": 0}
    gone = seen["afterDelete"]
    assert gone["code"] == 4002 and gone["msg"] and gone["logid"], gone
    bad_token = seen["badToken"]
    assert bad_token["code"] == 4100, bad_token
    assert bad_token["name"] == "AuthenticationError" and bad_token["status"] == 401
    assert bad_token["msg"] and bad_token["logid"]
