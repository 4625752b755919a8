"""Request pools for each measured operation (signed Volcengine calls, Coze calls with a bearer
token), the set-up made through the API, and a small client for set-up and checks."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from benchmarks.databases import Tenant
from benchmarks.http1 import HEAD_END, build_request, content_length, status_code
from convhub.wire.signing import sign_request

HOST = "127.0.0.1"
VERSION = "2020-12-01"
OWNER = 10001
BATCH = 100
CREATE_POOL = 256
# Groups are created by as many different owners, so that no owner comes near the limit of
# groups per user (500) however long a run replays the pool.
CREATE_GROUP_POOL = 4096
LISTER = 90001  # the user whose conversations GetUserConversations lists
LISTER_CONVERSATIONS = 50
USER_PAGE = 20  # GetUserConversations' documented cap
SCANNED_MEMBERS = 100
SCAN_LIMIT = 20  # Scan's cap without OnlyUserIds
ADD_BATCH = 20
ADD_BATCHES_PER_GROUP = 9  # 180 added members and the owner: under the cap of 200
ADD_GROUPS = 100
SEND_POOL = 1000  # messages into as many groups, each by its owner
MESSAGE_PAGE = 20  # GetConversationMessages' documented cap
PAGED_MESSAGES = 60
BATCH_POOL = 256
BATCH_SEED = 2020_12_01  # the BatchGet pool's draw: the same IDs in every run
SETUP_CONNECTIONS = 32
GROUP = 2  # ConversationType: group chat
SINGLE = 1  # ConversationType: single chat
PAIR_BASE = 3_000_000_000  # users of the single chats: pair n is PAIR_BASE + 2n and + 2n + 1
COZE_BOT = "7390000000000000001"  # the bot the Coze conversations are made for
LIST_LIMIT = 50  # messages per Coze list call: the API's maximum
LIST_MESSAGES = 60  # in the listed conversation: more than one full page

CREATE = "Create"
CREATE_SINGLE = "CreateConversation (single, new pairs)"
MODIFY = "Modify"
BATCH_GET = "BatchGet(100)"
BESIDE_WRITES = 10  # BatchGet(100) beside Modify: one request in this many is a Modify
BATCH_GET_BESIDE_MODIFY = f"BatchGet(100), 1 in {BESIDE_WRITES} a Modify"
MODIFY_ACTION = b"?Action=ModifyConversation&"  # in a Modify's request line, in no BatchGet's
COZE_RENAME = "Coze rename"
COZE_MESSAGE_CREATE = "Coze message create"
COZE_MESSAGE_LIST = f"Coze message list({LIST_LIMIT})"
USER_CONVERSATIONS = f"GetUserConversations({USER_PAGE} of {LISTER_CONVERSATIONS})"
BATCH_ADD = f"BatchAddConversationParticipant({ADD_BATCH})"
SCAN = f"ScanConversationParticipantList({SCAN_LIMIT} of {SCANNED_MEMBERS})"
SEND = "SendMessage"
MESSAGES = f"GetConversationMessages({MESSAGE_PAGE} of {PAGED_MESSAGES})"

Response = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class Targets:
    """What the set-up made through the API, for the pools to draw on."""

    volc: list[int]  # group chats in the tenant's main app
    volc_modify: Sequence[int]  # renamed by Modify
    batch: Sequence[int]  # drawn on by BatchGet
    coze: list[str]  # Coze conversations given the timed messages in turn
    coze_renamed: Sequence[str]  # Coze conversations renamed by Coze rename
    coze_listed: str  # a Coze conversation of LIST_MESSAGES messages, listed by LIST_LIMIT
    scanned: int  # a group of SCANNED_MEMBERS members
    add_groups: list[int]  # groups that BatchAdd fills
    paged: int  # a group of PAGED_MESSAGES messages


def signed_call(tenant: Tenant, port: int, action: str, body: dict[str, Any], now: float) -> bytes:
    """Raw bytes of ``POST /?Action=<action>&Version=2020-12-01`` signed with the tenant's key
    by the signer convhub.client uses: the load generator replays bytes built beforehand, so the
    client's signer is reused, not its HTTP round trip."""
    raw = orjson.dumps(body)
    headers = sign_request(
        method="POST",
        host=f"{HOST}:{port}",
        query={"Action": action, "Version": VERSION},
        body=raw,
        access_key=tenant.access_key,
        secret_key=tenant.secret_key,
        now=now,
    )
    target = f"/?Action={action}&Version={VERSION}"
    return build_request(method="POST", target=target, headers=headers, body=raw)


def create_pool(
    tenant: Tenant, port: int, size: int = CREATE_GROUP_POOL, app_id: int | None = None
) -> list[bytes]:
    """Group-chat creations in ``app_id`` (default: the tenant's create app), each by its own
    owner; replaying one creates a new group each time (no IdempotentId)."""
    now = time.time()
    return [
        signed_call(
            tenant,
            port,
            "CreateConversation",
            {
                "AppId": tenant.create_app_id if app_id is None else app_id,
                "OwnerUserId": OWNER + i,
                "ConversationCoreInfo": {"Name": f"bench group {i}", "ConversationType": GROUP},
            },
            now,
        )
        for i in range(size)
    ]


def create_single_pool(tenant: Tenant, port: int, first_pair: int, size: int) -> list[bytes]:
    """Single chats (ConversationType 1) in the tenant's create app, each between a pair of
    users that has none yet: pairs ``first_pair`` to ``first_pair + size - 1``. A pair's second
    create would answer its existing chat (``Exist`` true, a cheaper read), so a pool is sent
    once at most and the caller never hands out a pair twice."""
    now = time.time()
    return [
        signed_call(
            tenant,
            port,
            "CreateConversation",
            {
                "AppId": tenant.create_app_id,
                "OwnerUserId": PAIR_BASE + 2 * pair,
                "OtherUserId": PAIR_BASE + 2 * pair + 1,
                "ConversationCoreInfo": {"ConversationType": SINGLE},
            },
            now,
        )
        for pair in range(first_pair, first_pair + size)
    ]


def modify_pool(tenant: Tenant, port: int, ids: Sequence[int]) -> list[bytes]:
    """Two renames per conversation, A then B, so that cycling the pool always changes a name."""
    now = time.time()
    return [
        signed_call(
            tenant,
            port,
            "ModifyConversation",
            {
                "AppId": tenant.app_id,
                "ConversationCoreInfo": {"ConversationShortId": cid, "Name": f"renamed {tag} {i}"},
            },
            now,
        )
        for tag in ("A", "B")
        for i, cid in enumerate(ids)
    ]


def batch_get_pool(
    tenant: Tenant, port: int, ids: Sequence[int], size: int = BATCH_POOL
) -> list[bytes]:
    """Requests of 100 distinct existing IDs each, drawn with a fixed seed from all of ``ids``
    (a lazy sequence of a prefilled table's IDs will do)."""
    now = time.time()
    draw = random.Random(BATCH_SEED)
    return [
        signed_call(
            tenant,
            port,
            "BatchGetConversations",
            {"AppId": tenant.app_id, "ConversationShortId": draw.sample(ids, BATCH)},
            now,
        )
        for _ in range(size)
    ]


def batch_get_beside_modify_pool(
    tenant: Tenant, port: int, ids: Sequence[int], renamed: Sequence[int]
) -> list[bytes]:
    """BatchGet(100)s as ``batch_get_pool`` draws them, with a Modify of one of ``renamed``
    amid each run of ``BESIDE_WRITES`` - 1, so that readers meet other processes' writes.
    Each run begins and ends with a BatchGet (``verify_pool`` checks the first and the last)."""
    reads = batch_get_pool(tenant, port, ids)
    writes = modify_pool(tenant, port, renamed)
    half = BESIDE_WRITES // 2
    pool: list[bytes] = []
    for n, write in enumerate(writes):
        run = [reads[(n * (BESIDE_WRITES - 1) + i) % len(reads)] for i in range(BESIDE_WRITES - 1)]
        pool += [*run[:half], write, *run[half:]]
    return pool


def _members(first: int, count: int) -> list[dict[str, Any]]:
    return [{"ParticipantUserId": first + i, "NickName": f"member {i}"} for i in range(count)]


def _add_call(tenant: Tenant, port: int, group: int, first: int, count: int, now: float) -> bytes:
    body = {
        "AppId": tenant.app_id,
        "ConversationShortId": group,
        "Operator": OWNER,
        "ParticipantInfos": _members(first, count),
    }
    return signed_call(tenant, port, "BatchAddConversationParticipant", body, now)


def batch_add_pool(tenant: Tenant, port: int, groups: Sequence[int]) -> list[bytes]:
    """20 new members at a time into each group in turn, up to 180 per group; replaying the
    pool adds the same members again (an overwrite, as the page documents)."""
    now = time.time()
    return [
        _add_call(tenant, port, group, 200_000 + (g * 1_000) + b * ADD_BATCH, ADD_BATCH, now)
        for b in range(ADD_BATCHES_PER_GROUP)
        for g, group in enumerate(groups)
    ]


def _send_call(tenant: Tenant, port: int, group: int, sender: int, text: str, now: float) -> bytes:
    body = {
        "AppId": tenant.app_id,
        "ConversationShortId": group,
        "Sender": sender,
        "MsgType": 10001,
        "Content": orjson.dumps({"text": text}).decode(),
    }
    return signed_call(tenant, port, "SendMessage", body, now)


def send_pool(tenant: Tenant, port: int, groups: Sequence[int]) -> list[bytes]:
    """A text message by each group's owner (group i was made by OWNER + i); replaying one
    sends a new message (no ClientMsgId)."""
    now = time.time()
    return [
        _send_call(tenant, port, group, OWNER + i, f"bench {i}", now)
        for i, group in enumerate(groups[:SEND_POOL])
    ]


def messages_pool(tenant: Tenant, port: int, group: int) -> list[bytes]:
    """The newest page of a group's messages."""
    body = {"AppId": tenant.app_id, "ConversationShortId": group, "Cursor": 0,
            "Limit": MESSAGE_PAGE, "Reverse": 1}  # fmt: skip
    return [signed_call(tenant, port, "GetConversationMessages", body, time.time())]


def user_conversations_pool(tenant: Tenant, port: int) -> list[bytes]:
    """The first page (by recent activity) of a user's conversations."""
    body = {"AppId": tenant.app_id, "ParticipantUserId": LISTER, "Cursor": 0,
            "Limit": USER_PAGE, "DataType": 0}  # fmt: skip
    return [signed_call(tenant, port, "GetUserConversations", body, time.time())]


def scan_pool(tenant: Tenant, port: int, group: int) -> list[bytes]:
    """The first page of a group's members, in join order."""
    body = {"AppId": tenant.app_id, "ConversationShortId": group, "Cursor": 0,
            "Limit": SCAN_LIMIT}  # fmt: skip
    return [signed_call(tenant, port, "ScanConversationParticipantList", body, time.time())]


def coze_call(
    tenant: Tenant, port: int, method: str, target: str, body: dict[str, Any] | None = None
) -> bytes:
    """Raw bytes of a Coze API call with the tenant's bearer token, framed as cozepy sends it
    (compact JSON; no body, and no Content-Type, when there is nothing to send)."""
    headers = {"Host": f"{HOST}:{port}", "Authorization": f"Bearer {tenant.token}"}
    raw = b""
    if body is not None:
        headers["Content-Type"] = "application/json"
        raw = orjson.dumps(body)
    return build_request(method=method, target=target, headers=headers, body=raw)


def coze_rename_pool(tenant: Tenant, port: int, ids: Sequence[str]) -> list[bytes]:
    """``PUT /v1/conversations/{id}``, two names per conversation, A then B, as Modify does."""
    return [
        coze_call(tenant, port, "PUT", f"/v1/conversations/{cid}", {"name": f"renamed {tag} {i}"})
        for tag in ("A", "B")
        for i, cid in enumerate(ids)
    ]


def _message(tenant: Tenant, port: int, conversation_id: str, text: str) -> bytes:
    """A user text message, with the body cozepy's ``messages.create`` sends."""
    body = {"role": "user", "content": text, "content_type": "text", "meta_data": None}
    target = f"/v1/conversation/message/create?conversation_id={conversation_id}"
    return coze_call(tenant, port, "POST", target, body)


def coze_message_create_pool(
    tenant: Tenant, port: int, ids: Sequence[str], size: int = CREATE_POOL
) -> list[bytes]:
    """User text messages into the given conversations in turn; replaying one adds a message."""
    return [_message(tenant, port, ids[i % len(ids)], f"bench message {i}") for i in range(size)]


def coze_message_list_pool(tenant: Tenant, port: int, conversation_id: str) -> list[bytes]:
    """The newest LIST_LIMIT messages, with the body cozepy's ``messages.list`` sends."""
    body = {"order": "desc", "chat_id": None, "before_id": None, "after_id": None}
    target = f"/v1/conversation/message/list?conversation_id={conversation_id}"
    return [coze_call(tenant, port, "POST", target, {**body, "limit": LIST_LIMIT})]


def hello_pool(tenant: Tenant, port: int) -> list[bytes]:
    """What the ceiling receives: the same signed create requests (the ceiling ignores them)."""
    return create_pool(tenant, port, size=16)


async def _call_many(port: int, requests: Sequence[bytes], connections: int) -> list[Response]:
    results: list[Response] = [(0, b"")] * len(requests)
    queue = list(enumerate(requests))
    queue.reverse()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while queue:
                index, request = queue.pop()
                writer.write(request)
                head = await reader.readuntil(HEAD_END)
                body = await reader.readexactly(content_length(head[:-4]))
                results[index] = (status_code(head, 0), body)
        finally:
            writer.close()

    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(min(connections, len(requests))))), timeout=120
    )
    return results


def call_many(
    port: int, requests: Sequence[bytes], connections: int = SETUP_CONNECTIONS
) -> list[Response]:
    """Send every request once over a few keep-alive connections; responses in request order."""
    return asyncio.run(_call_many(port, requests, connections))


def create_conversations(tenant: Tenant, port: int, count: int) -> list[int]:
    """Create ``count`` group chats in the tenant's main app through the API; return their IDs."""
    responses = call_many(port, create_pool(tenant, port, size=count, app_id=tenant.app_id))
    return [int(_result(status, body)["ConversationShortId"]) for status, body in responses]


def create_coze_conversations(tenant: Tenant, port: int, count: int) -> list[str]:
    """Create ``count`` Coze conversations of the token's user through the API; their IDs."""
    requests = [
        coze_call(
            tenant,
            port,
            "POST",
            "/v1/conversation/create",
            {"bot_id": COZE_BOT, "name": f"bench coze {i}"},
        )
        for i in range(count)
    ]
    return [
        str(_coze_answer(status, body)["data"]["id"]) for status, body in call_many(port, requests)
    ]


def add_coze_messages(tenant: Tenant, port: int, conversation_id: str, count: int) -> None:
    """Add ``count`` user messages to a Coze conversation through the API."""
    requests = [_message(tenant, port, conversation_id, f"listed {i}") for i in range(count)]
    for status, body in call_many(port, requests):
        _coze_answer(status, body)


def set_up(tenant: Tenant, port: int, conversations: int, modify: int, coze: int) -> Targets:
    """Everything the pools draw on, made through the API like any client would."""
    volc = create_conversations(tenant, port, conversations)
    coze_ids = create_coze_conversations(tenant, port, coze + 1)
    listed = coze_ids.pop()
    add_coze_messages(tenant, port, listed, LIST_MESSAGES)
    now = time.time()
    # The lister joins LISTER_CONVERSATIONS of the groups; one more group gets 99 members.
    joins = [
        _add_call(tenant, port, group, LISTER, 1, now) for group in volc[-LISTER_CONVERSATIONS:]
    ]
    scanned, *add_groups = create_conversations(tenant, port, 1 + ADD_GROUPS)
    joins += [
        _add_call(tenant, port, scanned, 100_000 + start, ADD_BATCH, now)
        for start in range(0, SCANNED_MEMBERS - 1, ADD_BATCH)
    ]
    for status, body in call_many(port, joins, connections=1):
        failed = _result(status, body).get("FailedUserIds")
        if failed:
            raise RuntimeError(f"set-up BatchAdd failed for {failed}")
    paged = volc[0]  # made by OWNER
    sends = [
        _send_call(tenant, port, paged, OWNER, f"paged {i}", now) for i in range(PAGED_MESSAGES)
    ]
    for status, body in call_many(port, sends, connections=1):
        _result(status, body)
    return Targets(
        volc=volc, volc_modify=volc[:modify], batch=volc, coze=coze_ids, coze_renamed=coze_ids,
        coze_listed=listed, scanned=scanned, add_groups=add_groups, paged=paged,
    )  # fmt: skip


def _result(status: int, body: bytes) -> dict[str, Any]:
    if status != 200:
        raise RuntimeError(f"setup call answered HTTP {status}: {body[:300]!r}")
    parsed = orjson.loads(body)
    if "Error" in parsed.get("ResponseMetadata", {}):
        raise RuntimeError(f"setup call answered an error: {body[:300]!r}")
    result: dict[str, Any] = parsed.get("Result", {})
    return result


def _coze_answer(status: int, body: bytes) -> dict[str, Any]:
    """The whole answer of a successful Coze call (``code`` 0), else a RuntimeError."""
    if status != 200:
        raise RuntimeError(f"Coze call answered HTTP {status}: {body[:300]!r}")
    parsed: dict[str, Any] = orjson.loads(body)
    if parsed.get("code") != 0:
        raise RuntimeError(f"Coze call answered an error: {body[:300]!r}")
    return parsed


def _check_batch(result: dict[str, Any]) -> None:
    found = len(result.get("ConversationCoreInfos", []))
    if found != BATCH:
        raise RuntimeError(f"BatchGetConversations returned {found} of {BATCH} conversations")


def _check_create(result: dict[str, Any]) -> None:
    if int(result.get("ConversationShortId", 0)) <= 0:
        raise RuntimeError(f"CreateConversation returned no ConversationShortId: {result}")


def _check_single(result: dict[str, Any]) -> None:
    _check_create(result)
    info = result.get("ConversationInfo", {})
    if result.get("Exist") is not False or info.get("ConversationType") != SINGLE:
        raise RuntimeError(f"CreateConversation did not create a new single chat: {result}")


def _check_coze_rename(answer: dict[str, Any]) -> None:
    if not str(answer["data"].get("name", "")).startswith("renamed "):
        raise RuntimeError(f"Coze rename did not rename: {answer}")


def _check_coze_message(answer: dict[str, Any]) -> None:
    if not str(answer["data"].get("id", "")).isdigit():
        raise RuntimeError(f"Coze message create returned no message ID: {answer}")


def _check_coze_list(answer: dict[str, Any]) -> None:
    found = len(answer.get("data", []))
    if found != LIST_LIMIT or answer.get("has_more") is not True:
        raise RuntimeError(f"Coze message list returned {found} of {LIST_LIMIT} messages")


def _check_page(key: str, size: int) -> Callable[[dict[str, Any]], None]:
    def check(result: dict[str, Any]) -> None:
        found = len(result.get(key, []))
        if found != size or result.get("HasMore") is not True:
            raise RuntimeError(f"{key}: {found} of {size}, or no HasMore: {result}")

    return check


def _check_added(result: dict[str, Any]) -> None:
    if result.get("FailedUserIds") != []:
        raise RuntimeError(f"BatchAddConversationParticipant failed some: {result}")


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    CREATE: _check_create,
    CREATE_SINGLE: _check_single,
    MODIFY: lambda result: None,
    BATCH_GET: _check_batch,
    BATCH_GET_BESIDE_MODIFY: _check_batch,
    USER_CONVERSATIONS: _check_page("ConversationInfos", USER_PAGE),
    BATCH_ADD: _check_added,
    SCAN: _check_page("Participants", SCAN_LIMIT),
    SEND: lambda result: None if int(result.get("MessageId", 0)) > 0 else _fail(result),
    MESSAGES: _check_page("Messages", MESSAGE_PAGE),
}


def _fail(result: dict[str, Any]) -> None:
    raise RuntimeError(f"unexpected answer: {result}")


COZE_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    COZE_RENAME: _check_coze_rename,
    COZE_MESSAGE_CREATE: _check_coze_message,
    COZE_MESSAGE_LIST: _check_coze_list,
}


def verify_pool(port: int, operation: str, pool: Sequence[bytes]) -> None:
    """Send the first and the last request of a pool once and check the answers are right."""
    for status, body in call_many(port, [pool[0], pool[-1]], connections=1):
        if operation in COZE_CHECKS:
            COZE_CHECKS[operation](_coze_answer(status, body))
        else:
            CHECKS[operation](_result(status, body))
