"""``convhub serve`` run like a service, as a child process: its logs never show a credential, and
its ``/metrics`` adds up every worker's requests."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from convhub.domain.models import EntityStatus
from convhub.store.engine import create_database_engine
from tests import admin
from tests.metrics import scrape, series, value
from tests.support import (
    Tenant,
    child_env,
    convhub_command,
    free_port,
    required_postgres,
    signed_headers,
)

VERSION = "2020-12-01"
DISABLED = EntityStatus.DISABLED


def cli(*args: str) -> str:
    """``convhub …`` in a process of its own; its stdout (where keys and tokens are shown)."""
    done = subprocess.run(
        [*convhub_command(), *args], capture_output=True, text=True, env=child_env(), timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass
class Served:
    base_url: str
    host: str
    stdout: Path
    stderr: Path

    def logs(self) -> str:
        return self.stdout.read_text(errors="replace") + self.stderr.read_text(errors="replace")

    def request_lines(self) -> list[dict[str, Any]]:
        lines = self.stdout.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if '"message":"request"' in line]


@contextmanager
def serving(args: Sequence[str], workdir: Path, env: Mapping[str, str] = {}) -> Iterator[Served]:
    port = free_port()
    stdout, stderr = workdir / "stdout.txt", workdir / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*convhub_command(), "serve", "--port", str(port), *args],
            cwd=workdir,
            env=child_env(env),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    served = Served(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", stdout, stderr)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as http:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"convhub serve exited with {process.returncode}:\n{served.logs()}")
                assert time.monotonic() < deadline, f"convhub serve did not start:\n{served.logs()}"
                try:
                    if http.get(served.base_url + "/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own session: it and its workers
                process.wait(timeout=10)


def signed(
    http: httpx.Client, host: str, tenant: Tenant, action: str, body: object, **options: Any
) -> tuple[httpx.Response, str]:
    """A signed Volcengine call; also the signature it carried."""
    data = json.dumps(body).encode()
    query = {"Action": action, "Version": VERSION}
    headers = signed_headers(tenant, host, query, data, **options)
    signature = headers["Authorization"].rpartition("Signature=")[2]
    return http.post("/", params=query, content=data, headers=headers), signature


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_key_token_or_signature_reaches_the_logs_even_at_debug(
    database_url: str, tmp_path: Path, log_format: str
) -> None:
    db = ("--database-url", database_url)
    account = "logs-" + secrets.token_hex(4)
    engine = create_database_engine(database_url, pool_size=1)
    try:
        admin.create_account(engine, account)
        app_id = admin.create_app(engine, account)
        disabled = admin.create_key(engine, account)
        revoked = admin.create_token(engine, account, user="bob")
    finally:
        engine.dispose()
    # The credentials a user would use: made by the CLI, shown once on its stdout.
    created = dict(line.split() for line in cli("keys", "create", "--account", account, *db)
                   .splitlines())  # fmt: skip
    made = dict(line.split() for line in cli("tokens", "create", "--account", account,
                                              "--user", "ann", *db).splitlines())  # fmt: skip
    tenant = Tenant(account, app_id, created["AccessKey"], created["SecretKey"])
    off = Tenant(account, app_id, disabled.access_key, disabled.secret_key)
    wrong_secret = secrets.token_hex(20)
    bogus_token = "pat_" + secrets.token_urlsafe(32)
    shown = [tenant.secret_key, off.secret_key, wrong_secret, made["Token"], revoked.token,
             bogus_token]  # fmt: skip
    sent = 0

    args = [*db, "--log-level", "debug", "--log-format", log_format]
    with (
        serving(args, tmp_path, {"CONVHUB_ACCESS_CACHE_SECONDS": "0"}) as served,
        httpx.Client(base_url=served.base_url, timeout=30) as http,
    ):
        signatures = []

        def volc(who: Tenant, action: str, body: object, status: int, **options: Any) -> None:
            nonlocal sent
            response, signature = signed(http, served.host, who, action, body, **options)
            assert response.status_code == status, response.text
            signatures.append(signature)
            sent += 1

        def coze(token: str, code: int, method: str = "POST", path: str = "") -> None:
            nonlocal sent
            response = http.request(
                method, path or "/v1/conversation/create", json={"bot_id": "b"},
                headers={"Authorization": f"Bearer {token}"},
            )  # fmt: skip
            assert response.json()["code"] == code, response.text
            sent += 1

        group = {"AppId": app_id, "OwnerUserId": 1, "ConversationCoreInfo": {"ConversationType": 2}}
        conversation = 0
        for _ in range(3):
            response, signature = signed(http, served.host, tenant, "CreateConversation", group)
            signatures.append(signature)
            sent += 1
            conversation = response.json()["Result"]["ConversationShortId"]
        volc(tenant, "SendMessage", {"AppId": app_id, "ConversationShortId": conversation,
             "Sender": 1, "MsgType": 10001, "Content": '{"text":"hi"}'}, 200)  # fmt: skip
        volc(tenant, "BatchGetConversations",
             {"AppId": app_id, "ConversationShortId": [conversation]}, 200)  # fmt: skip
        volc(tenant, "BatchGetConversations", {"AppId": app_id}, 401, secret_key=wrong_secret)
        volc(tenant, "CreateConversation", group, 400, now=time.time() - 3600)  # stale X-Date
        _directory(database_url, lambda e: admin.set_key_status(e, off.access_key, DISABLED))
        volc(off, "BatchGetConversations", {"AppId": app_id}, 401, secret_key=wrong_secret)
        volc(off, "BatchGetConversations", {"AppId": app_id}, 401)  # a disabled key, signed
        coze(made["Token"], 0)
        coze(made["Token"], 0, "GET", "/v1/conversations?bot_id=b")
        coze(bogus_token, 4100)
        coze(revoked.token, 0)
        _directory(database_url, lambda e: admin.revoke_token(e, revoked.id))
        coze(revoked.token, 4100)
        coze(made["Token"] + "x", 4100)
        for header in (f"Bearer {made['Token']} extra", f"Basic {made['Token']}"):
            response = http.post("/v1/conversation/create", headers={"Authorization": header})
            assert response.json()["code"] == 4100
            sent += 1

    logs = served.logs()
    for secret in shown + signatures:
        assert secret not in logs, f"a credential is in the logs: {secret[:6]}…"
    assert len(signatures) == 9  # (identical requests in one second share one)
    # Not vacuous: every request was logged (one line each), debug output included.
    if log_format == "json":
        assert len(served.request_lines()) == sent
    else:
        assert len(re.findall(r" request_id=\S+$", logs, re.MULTILINE)) == sent
    assert "Application startup complete" in logs


def test_metrics_add_up_over_two_workers() -> None:
    with required_postgres() as url, _tmp() as workdir:
        db = ("--database-url", url)
        account = "workers-" + secrets.token_hex(4)
        cli("accounts", "create", account, *db)
        app_id = int(cli("apps", "create", "--account", account, *db).split()[2])
        key = dict(line.split() for line in cli("keys", "create", "--account", account, *db)
                   .splitlines())  # fmt: skip
        tenant = Tenant(account, app_id, key["AccessKey"], key["SecretKey"])
        args = [*db, "--workers", "2", "--log-format", "json", "--rate-limits", "*=1000000"]
        with serving(args, workdir) as served:
            sent = 0
            pids: set[int] = set()
            lock = threading.Lock()

            def one(_: int) -> None:
                nonlocal sent
                # A connection each, so that both workers get some.
                with httpx.Client(base_url=served.base_url, timeout=30) as http:
                    response, _signature = signed(
                        http, served.host, tenant, "BatchGetConversations",
                        {"AppId": app_id, "ConversationShortId": [1]},
                    )  # fmt: skip
                assert response.status_code == 200, response.text
                with lock:
                    sent += 1

            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(8) as pool:
                while len(pids) < 2:
                    list(pool.map(one, range(16)))
                    time.sleep(0.2)  # the log lines are written after the answers
                    pids = {line["pid"] for line in served.request_lines()}
                    assert sent < 800, "every request went to one worker"
            assert len(served.request_lines()) == sent
            with httpx.Client(base_url=served.base_url, timeout=30) as http:
                for _ in range(6):  # whichever worker answers, it adds up both
                    samples = scrape(http)
                    assert series(samples, "convhub_requests_total") == {
                        (("action", "BatchGetConversations"), ("dialect", "volc"),
                         ("outcome", "ok")): sent,
                    }  # fmt: skip
                    count = value(samples, "convhub_request_duration_seconds_count",
                                  dialect="volc", action="BatchGetConversations")  # fmt: skip
                    assert count == sent
                    assert value(samples, "convhub_writer_queue_depth") == 0
                    assert value(samples, "convhub_listening_processes") == 2  # each worker


def test_one_worker_keeps_its_metrics_in_memory_whatever_the_environment_says(
    tmp_path: Path,
) -> None:
    stale = tmp_path / "metrics"
    stale.mkdir()
    url = f"sqlite:///{tmp_path / 'convhub.db'}"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(stale)}
    with (
        serving(["--database-url", url], tmp_path, env) as served,
        httpx.Client(base_url=served.base_url, timeout=30) as http,
    ):
        assert http.get("/v1/nothing").json()["code"] == 4200
        samples = scrape(http)
        assert value(samples, "convhub_requests_total", dialect="coze", action="unknown",
                     outcome="route_not_found") == 1  # fmt: skip
    assert list(stale.iterdir()) == []


def _directory(database_url: str, change: Callable[[Engine], None]) -> None:
    engine = create_database_engine(database_url, pool_size=1)
    try:
        change(engine)
    finally:
        engine.dispose()


@contextmanager
def _tmp() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="convhub-workers-") as path:
        yield Path(path)
