"""Helpers the tests share: databases on both engines, a live server, tenants, signed calls."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Connection

from convhub.client import VolcAuth
from convhub.config import Settings
from convhub.domain.models import Conversation, ConversationType
from convhub.server import Convhub
from convhub.store import migrate
from convhub.store.engine import create_database_engine
from convhub.wire.signing import sign_request
from tests import admin
from tests.postgres import PostgresMissing, scratch_database

REDIS_URL = os.environ.get("CONVHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ENGINES = [
    e.strip() for e in os.environ.get("CONVHUB_TEST_ENGINES", "sqlite,postgresql").split(",")
]
# Tests that are not about rate limits must never meet one.
NO_LIMITS = "*=1000000"
VERSION = "2020-12-01"
# Real signed requests of the official clients, beside the repository (../shared).
SIGNING_VECTORS = (
    Path(__file__).resolve().parents[2] / "shared" / "vectors" / "volc-signed-requests.jsonl"
)


def group_of(conversation_id: int, app_id: int) -> Conversation:
    """A group conversation of user ``u`` with nothing else set, for tests of the store."""
    return Conversation(
        id=conversation_id, app_id=app_id, inbox_type=0, type=ConversationType.GROUP, owner="u",
        creator="u", other=None, create_time=1, modify_time=1,
    )  # fmt: skip


def convhub_command() -> list[str]:
    """The installed ``convhub`` beside this Python, or ``python -m convhub.cli``."""
    script = Path(sys.executable).with_name("convhub")
    return [str(script)] if script.exists() else [sys.executable, "-m", "convhub.cli"]


def child_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """The environment for a ``convhub`` child process: none of this one's convhub settings,
    metrics directory or Volcengine credentials (the child is configured by its arguments and
    ``extra`` alone), its output unbuffered."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONVHUB_", "PROMETHEUS_", "VOLC_"))
    }
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_gone(thread: threading.Thread, timeout: float = 5.0) -> None:
    """Wait until a joined ``thread`` has left the process (Linux: ``/proc/self/task``): join()
    returns before it has, and a thread that leaves during another test's count of this
    process's threads takes its context switches and CPU with it."""
    task = Path(f"/proc/self/task/{thread.native_id}")
    deadline = time.monotonic() + timeout
    while task.exists() and time.monotonic() < deadline:
        time.sleep(0.001)


@contextmanager
def empty_postgres() -> Iterator[str]:
    """A fresh PostgreSQL database without tables; a PostgreSQL that is not there fails the test
    loudly, it never skips it."""
    try:
        context = scratch_database("convhub_test")
        url = context.__enter__()
    except PostgresMissing as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield url
    finally:
        context.__exit__(None, None, None)


@contextmanager
def connection(url: str) -> Iterator[Connection]:
    """A connection of its own to ``url`` (as another process's), its engine disposed after."""
    engine = create_database_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


@contextmanager
def required_postgres() -> Iterator[str]:
    """A migrated fresh PostgreSQL database (see ``empty_postgres``)."""
    with empty_postgres() as url:
        yield migrated(url)


@dataclass(frozen=True)
class Tenant:
    account: str
    app_id: int
    access_key: str
    secret_key: str


def new_tenant(database_url: str) -> Tenant:
    engine = create_database_engine(database_url, pool_size=1)
    try:
        account = "acct-" + secrets.token_hex(6)
        admin.create_account(engine, account)
        app_id = admin.create_app(engine, account)
        key = admin.create_key(engine, account)
    finally:
        engine.dispose()
    return Tenant(account, app_id, key.access_key, key.secret_key)


def new_token(database_url: str, account: str, *, user: str) -> str:
    """A Coze token of ``user`` in the account's first app."""
    engine = create_database_engine(database_url, pool_size=1)
    try:
        return admin.create_token(engine, account, user=user).token
    finally:
        engine.dispose()


def migrated(database_url: str) -> str:
    migrate.upgrade(database_url)
    return database_url


class LiveServer:
    """A convhub app served by uvicorn on a free port, in a thread of the test process."""

    def __init__(self, settings: Settings) -> None:
        self.app = Convhub(settings)
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.base_url = f"http://{self.host}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self.app.close()


def signed_headers(
    tenant: Tenant,
    host: str,
    query: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    secret_key: str | None = None,
) -> dict[str, str]:
    """All the headers of a request built by hand, signed by the signer the client uses: for
    tests that send what no client would (another clock, another secret, odd framing)."""
    return sign_request(
        method="POST",
        host=host,
        query=query,
        body=body,
        access_key=tenant.access_key,
        secret_key=secret_key or tenant.secret_key,
        now=time.time() if now is None else now,
    )


class VolcClient:
    """Raw HTTP calls signed by the client's signer (``VolcAuth``): for contract tests of
    envelopes and status codes, which need the answer as it came and bodies no client sends.
    ``http`` itself signs nothing, so tests may send it requests signed their own way."""

    def __init__(self, server: LiveServer, tenant: Tenant) -> None:
        self.server = server
        self.tenant = tenant
        self.http = httpx.Client(base_url=server.base_url, timeout=30)
        self.auth = VolcAuth(tenant.access_key, tenant.secret_key)

    def call(
        self, action: str, body: Any, *, raw: bytes | None = None, version: str = VERSION
    ) -> httpx.Response:
        data = raw if raw is not None else json.dumps(body).encode()
        query = {"Action": action, "Version": version}
        headers = {"Content-Type": "application/json"}
        return self.http.post("/", params=query, content=data, headers=headers, auth=self.auth)

    def ok(self, action: str, body: Any) -> dict[str, Any]:
        response = self.call(action, body)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert "Error" not in payload["ResponseMetadata"], payload
        result: dict[str, Any] = payload["Result"]
        return result

    def error(
        self, action: str, body: Any, *, raw: bytes | None = None
    ) -> tuple[int, dict[str, Any]]:
        response = self.call(action, body, raw=raw)
        payload = response.json()
        assert "Result" not in payload, payload
        error: dict[str, Any] = payload["ResponseMetadata"]["Error"]
        return response.status_code, error

    def close(self) -> None:
        self.http.close()
