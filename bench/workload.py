"""Signed request pools for each measured operation, and a small client for setup and checks."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from bench.databases import Tenant
from bench.http1 import HEAD_END, build_request, content_length, status_code
from convhub.dialects.volc.signing import sign_request

HOST = "127.0.0.1"
VERSION = "2020-12-01"
OWNER = 10001
BATCH = 100
CREATE_POOL = 256
BATCH_POOL = 256
SETUP_CONNECTIONS = 32
GROUP = 2  # ConversationType: group chat

Response = tuple[int, bytes]


def signed_call(tenant: Tenant, port: int, action: str, body: dict[str, Any], now: float) -> bytes:
    """Raw bytes of ``POST /?Action=<action>&Version=2020-12-01`` signed with the tenant's key."""
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
    tenant: Tenant, port: int, size: int = CREATE_POOL, app_id: int | None = None
) -> list[bytes]:
    """Group-chat creations in ``app_id`` (default: the tenant's create app); replaying one
    creates a new group each time (no IdempotentId)."""
    now = time.time()
    return [
        signed_call(
            tenant,
            port,
            "CreateConversation",
            {
                "AppId": tenant.create_app_id if app_id is None else app_id,
                "OwnerUserId": OWNER,
                "ConversationCoreInfo": {"Name": f"bench group {i}", "ConversationType": GROUP},
            },
            now,
        )
        for i in range(size)
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
    """Requests of 100 distinct existing IDs each, drawn with a fixed seed."""
    now = time.time()
    draw = random.Random(2020_12_01)
    return [
        signed_call(
            tenant,
            port,
            "BatchGetConversations",
            {"AppId": tenant.app_id, "ConversationShortId": draw.sample(list(ids), BATCH)},
            now,
        )
        for _ in range(size)
    ]


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


def _result(status: int, body: bytes) -> dict[str, Any]:
    if status != 200:
        raise RuntimeError(f"setup call answered HTTP {status}: {body[:300]!r}")
    parsed = orjson.loads(body)
    if "Error" in parsed.get("ResponseMetadata", {}):
        raise RuntimeError(f"setup call answered an error: {body[:300]!r}")
    result: dict[str, Any] = parsed.get("Result", {})
    return result


def _check_batch(result: dict[str, Any]) -> None:
    found = len(result.get("ConversationCoreInfos", []))
    if found != BATCH:
        raise RuntimeError(f"BatchGetConversations returned {found} of {BATCH} conversations")


def _check_create(result: dict[str, Any]) -> None:
    if int(result.get("ConversationShortId", 0)) <= 0:
        raise RuntimeError(f"CreateConversation returned no ConversationShortId: {result}")


CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "Create": _check_create,
    "Modify": lambda result: None,
    "BatchGet(100)": _check_batch,
}


def verify_pool(port: int, operation: str, pool: Sequence[bytes]) -> None:
    """Send the first and the last request of a pool once and check the answers are right."""
    for status, body in call_many(port, [pool[0], pool[-1]], connections=1):
        CHECKS[operation](_result(status, body))
