"""``convhub serve`` run as a service: SIGTERM stops it gracefully, SIGKILL loses nothing it
acknowledged. Both under concurrent writes through both dialects, on both engines, with the
database checked afterwards."""

from __future__ import annotations

import functools
import json
import signal
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from convhub.store.tables import conversations, messages, node_leases
from tests.e2e.test_volc_sdks import Served, convhub_serve
from tests.support import (
    NO_LIMITS,
    VERSION,
    Tenant,
    connection,
    new_tenant,
    new_token,
    signed_headers,
)

GRACE = 5  # --graceful-timeout of these servers, seconds
BOT = "7390000000000000001"

Answer = tuple[int, dict[str, Any]] | None  # (status, JSON body), or None: no answer came


@dataclass
class Credentials:
    tenant: Tenant
    token: str


@pytest.fixture
def credentials(database_url: str) -> Credentials:
    tenant = new_tenant(database_url)
    return Credentials(tenant, new_token(database_url, tenant.account, user="10001"))


def serve(
    database_url: str, workdir: Path, *, grace: int = GRACE
) -> AbstractContextManager[Served]:
    workdir.mkdir(parents=True, exist_ok=True)
    args = ["--database-url", database_url, "--no-access-log", "--rate-limits", NO_LIMITS]
    return convhub_serve([*args, "--graceful-timeout", str(grace)], workdir)


def port_of(served: Served) -> int:
    return int(served.host.rsplit(":", 1)[1])


def lease_owners(database_url: str, pid: int) -> list[str]:
    with connection(database_url) as conn:
        owners = conn.execute(sa.select(node_leases.c.owner)).scalars().all()
    return [o for o in owners if f":{pid}:" in o]


class Client:
    """Signed Volcengine calls and Bearer Coze calls to one server; None when no answer came."""

    def __init__(self, served: Served, credentials: Credentials) -> None:
        self.host = served.host
        self.tenant = credentials.tenant
        self.token = credentials.token
        self.http = httpx.Client(base_url=served.base_url, timeout=30)

    def volc(self, action: str, body: dict[str, Any]) -> Answer:
        data = json.dumps({"AppId": self.tenant.app_id, **body}).encode()
        query = {"Action": action, "Version": VERSION}
        headers = signed_headers(self.tenant, self.host, query, data)
        try:
            response = self.http.post("/", params=query, content=data, headers=headers)
        except httpx.TransportError:
            return None
        return _answer(response)

    def coze(
        self, method: str, path: str, body: dict[str, Any], params: dict[str, str] | None = None
    ) -> Answer:
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            response = self.http.request(method, path, json=body, params=params, headers=headers)
        except httpx.TransportError:
            return None
        return _answer(response)

    def close(self) -> None:
        self.http.close()


def _answer(response: httpx.Response) -> Answer:
    try:
        return response.status_code, response.json()
    except ValueError:  # not JSON: kept, and failed by the tests' checks of every answer
        return response.status_code, {"not JSON": response.text}


def group(name: str, owner: int = 10001, **extra: Any) -> dict[str, Any]:
    """A group; creates under load spread their owners (a user may own only so many groups)."""
    return {"OwnerUserId": owner, "ConversationCoreInfo": {"ConversationType": 2, "Name": name},
            **extra}  # fmt: skip


def created_id(answer: Answer) -> int | None:
    """The ID a 200 answer acknowledged (either dialect), else None."""
    if answer is None or answer[0] != 200:
        return None
    payload = answer[1]
    if "ResponseMetadata" in payload:
        return int(payload["Result"]["ConversationShortId"])
    assert payload["code"] == 0, payload
    return int(payload["data"]["id"])


@dataclass
class Load:
    """Threads that call ``work(client, worker, round)`` until stopped; ``answers`` keeps every
    answer that came (``None`` for none)."""

    work: Callable[[Client, int, int], list[Answer]]
    threads: int
    answers: list[Answer] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _running: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, client_for: Callable[[], Client]) -> None:
        self._stop.clear()
        self._running = [
            threading.Thread(target=self._loop, args=(client_for, worker), daemon=True)
            for worker in range(self.threads)
        ]
        for thread in self._running:
            thread.start()

    def _loop(self, client_for: Callable[[], Client], worker: int) -> None:
        client = client_for()
        try:
            round_ = 0
            while not self._stop.is_set():
                got = self.work(client, worker, round_)
                with self._lock:
                    self.answers.extend(got)
                if any(a is None for a in got):
                    time.sleep(0.01)  # the server is going or gone: do not spin
                round_ += 1
        finally:
            client.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._running:
            thread.join(timeout=60)
            assert not thread.is_alive()

    def answered(self, minimum: int) -> None:
        deadline = time.monotonic() + 30
        while sum(a is not None for a in self.answers) < minimum:
            assert time.monotonic() < deadline, "the load made no progress"
            time.sleep(0.02)


# =========================================================================== SIGTERM


def _raw_signed_create(served: Served, tenant: Tenant, name: str) -> tuple[bytes, bytes]:
    """A signed CreateConversation as raw bytes: (headers and all of the body but 8 bytes, rest)."""
    body = json.dumps({"AppId": tenant.app_id, **group(name)}).encode()
    query = {"Action": "CreateConversation", "Version": VERSION}
    headers = signed_headers(tenant, served.host, query, body)
    lines = [f"POST /?Action=CreateConversation&Version={VERSION} HTTP/1.1",
             f"Host: {served.host}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items() if k.lower() != "host")]  # fmt: skip
    raw = "\r\n".join(lines).encode() + b"\r\n\r\n" + body
    return raw[:-8], raw[-8:]


def _read_answer(conn: socket.socket) -> tuple[int, dict[str, Any]]:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        # The listening socket closed while this connect sat in its queue: not taken either.
        return True
    return False


def _creates(client: Client, worker: int, round_: int) -> list[Answer]:
    if worker % 2:
        return [client.coze("POST", "/v1/conversation/create", {"bot_id": BOT})]
    owner = 1_000_000 * (worker + 1) + round_
    return [client.volc("CreateConversation", group(f"w{worker}-{round_}", owner))]


def _refusal(answer: Answer) -> bool:
    """The one documented refusal while stopping: ServiceUnavailable / Coze 5000, HTTP 503."""
    if answer is None or answer[0] != 503:
        return False
    payload = answer[1]
    if "ResponseMetadata" in payload:
        return bool(payload["ResponseMetadata"]["Error"]["Code"] == "ServiceUnavailable")
    return bool(payload.get("code") == 5000)


def test_sigterm_answers_what_is_in_flight_drains_and_exits_0(
    database_url: str, credentials: Credentials, tmp_path: Path
) -> None:
    tenant = credentials.tenant
    load = Load(_creates, threads=8)
    with (
        serve(database_url, tmp_path) as served,
        socket.create_connection(("127.0.0.1", port_of(served)), timeout=30) as held,
    ):
        pid = served.process.pid
        assert len(lease_owners(database_url, pid)) == 1
        first, rest = _raw_signed_create(served, tenant, "in flight at SIGTERM")
        held.sendall(first)  # a request in flight: all but the end of its body
        load.start(functools.partial(Client, served, credentials))
        try:
            load.answered(100)
            sent = time.monotonic()
            served.process.send_signal(signal.SIGTERM)

            # It stops taking connections at once, and serves on the one in flight.
            while not _refused(port_of(served)):
                assert time.monotonic() - sent < 5, "still accepting connections after SIGTERM"
                time.sleep(0.02)
            time.sleep(0.3)
            assert served.process.poll() is None, served.log()
            held.sendall(rest)
            status, payload = _read_answer(held)
            assert status == 200, payload
            in_flight_id = int(payload["Result"]["ConversationShortId"])

            code = served.process.wait(timeout=GRACE + 10)
            elapsed = time.monotonic() - sent
        finally:
            load.stop()
    log = served.log()
    assert code == 0, log
    assert elapsed < GRACE + 4, elapsed  # documented: the grace period plus draining the writer
    assert "Application shutdown complete" in log and "Traceback" not in log, log

    answered = [a for a in load.answers if a is not None]
    assert len(answered) >= 100
    refused = [a for a in answered if a[0] != 200 and not _refusal(a)]
    assert refused == [], refused[:3]
    acknowledged = {i for i in map(created_id, answered) if i is not None} | {in_flight_id}
    with connection(database_url) as conn:
        stored = set(
            conn.execute(
                sa.select(conversations.c.id).where(conversations.c.app_id == tenant.app_id)
            ).scalars()
        )
    assert acknowledged <= stored, sorted(acknowledged - stored)[:5]
    assert lease_owners(database_url, pid) == []  # the ID node was given back


SHORT_GRACE = 2


def test_a_request_still_unfinished_after_the_grace_period_is_refused_and_it_exits_0(
    database_url: str, credentials: Credentials, tmp_path: Path
) -> None:
    with (
        serve(database_url, tmp_path, grace=SHORT_GRACE) as served,
        socket.create_connection(("127.0.0.1", port_of(served)), timeout=30) as stuck,
    ):
        pid = served.process.pid
        first, _rest = _raw_signed_create(served, credentials.tenant, "never finished")
        stuck.sendall(first)  # and never the rest of its body
        time.sleep(0.3)  # the server has read its headers: the request is in flight
        sent = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        status, payload = _read_answer(stuck)
        code = served.process.wait(timeout=SHORT_GRACE + 10)
        elapsed = time.monotonic() - sent
    log = served.log()
    assert code == 0, log
    assert SHORT_GRACE - 0.5 < elapsed < SHORT_GRACE + 4, elapsed
    # the documented refusal, in the dialect's envelope: not uvicorn's plain-text 500
    assert status == 503, payload
    assert payload["ResponseMetadata"]["Error"]["Code"] == "ServiceUnavailable", payload
    assert "Application shutdown complete" in log and "Exception in ASGI" not in log, log
    assert lease_owners(database_url, pid) == []


@contextmanager
def write_lock(database_url: str) -> Iterator[None]:
    """Holds off every writer of ``conversations`` (SQLite: the database's write lock)."""
    with connection(database_url) as conn, conn.begin() as transaction:
        # convhub's engine begins SQLite transactions with BEGIN IMMEDIATE: the write lock
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("LOCK TABLE conversations IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            transaction.rollback()


def test_a_write_queued_when_the_grace_period_ends_is_answered_with_its_outcome(
    database_url: str, credentials: Credentials, tmp_path: Path
) -> None:
    """A request whose write is queued but not yet committed when the grace period runs out is
    not refused (its write is committed all the same, as shutdown drains the writer): it is
    answered once the write is, and the process exits 0 when the writer has drained."""
    answers: list[Answer] = []
    with serve(database_url, tmp_path, grace=SHORT_GRACE) as served:
        pid = served.process.pid
        client = Client(served, credentials)
        with write_lock(database_url):
            caller = threading.Thread(
                target=lambda: answers.append(client.volc("CreateConversation", group("held")))
            )
            caller.start()
            time.sleep(0.5)  # its write is queued, and the writer waits for the lock
            sent = time.monotonic()
            served.process.send_signal(signal.SIGTERM)
            time.sleep(SHORT_GRACE + 1)  # past the grace period: uvicorn cancels the request
            assert served.process.poll() is None, served.log()
            assert answers == []
        caller.join(timeout=30)
        client.close()
        code = served.process.wait(timeout=10)
        elapsed = time.monotonic() - sent
    assert code == 0, served.log()
    assert elapsed < SHORT_GRACE + 5, elapsed
    made = created_id(answers[0])
    assert made is not None, answers
    with connection(database_url) as conn:
        name = conn.execute(
            sa.select(conversations.c.name).where(conversations.c.id == made)
        ).scalar_one()
    assert name == "held"
    assert lease_owners(database_url, pid) == []


# =========================================================================== SIGKILL

KILL_CYCLES = 3
LOAD_SECONDS = 1.0
KEYS = [f"idempotent-{k}" for k in range(4)]


@dataclass
class Acknowledged:
    """What the servers answered 200 to, across every kill cycle."""

    creates: set[int] = field(default_factory=set)
    keyed: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    renamed: dict[int, int] = field(default_factory=dict)  # conversation -> highest answered n
    coze_renamed: dict[int, int] = field(default_factory=dict)
    coze_messages: set[int] = field(default_factory=set)
    failures: list[Answer] = field(default_factory=list)  # answered, but not 200
    lock: threading.Lock = field(default_factory=threading.Lock)


class Writers:
    """Four kinds of writer: Volcengine creates (every other one with an IdempotentId from
    ``KEYS``), Volcengine renames of one conversation per writer, and Coze writers that create a
    conversation, rename it and write a message into it, over and over. A rename's name carries
    a number that only grows, so that "this value or a later one" can be checked."""

    def __init__(self, acked: Acknowledged, targets: list[int]) -> None:
        self.acked = acked
        self.targets = targets
        self.counter = 0
        self.coze_current: dict[int, int] = {}

    def next_number(self) -> int:
        with self.acked.lock:
            self.counter += 1
            return self.counter

    def _ok(self, answer: Answer) -> bool:
        if answer is not None and answer[0] != 200:
            with self.acked.lock:
                self.acked.failures.append(answer)
        return answer is not None and answer[0] == 200

    def work(self, client: Client, worker: int, round_: int) -> list[Answer]:
        kind = worker % 4
        if kind == 0:
            key = KEYS[(round_ // 2) % len(KEYS)] if round_ % 2 else None
            if key is None:
                body = group(f"c{round_}", owner=1_000_000 + self.next_number())
            else:
                body = group(f"c{round_}", IdempotentId=key)
            answer = client.volc("CreateConversation", body)
            made = created_id(answer) if self._ok(answer) else None
            if made is not None:
                with self.acked.lock:
                    (self.acked.keyed[key] if key else self.acked.creates).add(made)
            return [answer]
        if kind == 1:
            target = self.targets[worker // 4]
            n = self.next_number()
            body = {"ConversationCoreInfo": {"ConversationShortId": target, "Name": f"n{n}"}}
            answer = client.volc("ModifyConversation", body)
            if self._ok(answer):
                with self.acked.lock:
                    self.acked.renamed[target] = max(n, self.acked.renamed.get(target, 0))
            return [answer]
        answers: list[Answer] = []
        current = self.coze_current.get(worker)
        if current is None or round_ % 5 == 0:
            answer = client.coze("POST", "/v1/conversation/create", {"bot_id": BOT})
            answers.append(answer)
            made = created_id(answer) if self._ok(answer) else None
            if made is None:
                return answers
            with self.acked.lock:
                self.acked.creates.add(made)
            self.coze_current[worker] = current = made
        n = self.next_number()
        answer = client.coze("PUT", f"/v1/conversations/{current}", {"name": f"n{n}"})
        answers.append(answer)
        if self._ok(answer):
            with self.acked.lock:
                self.acked.coze_renamed[current] = max(n, self.acked.coze_renamed.get(current, 0))
        message = {"role": "user", "content": f"m{n}", "content_type": "text"}
        params = {"conversation_id": str(current)}
        answer = client.coze("POST", "/v1/conversation/message/create", message, params)
        answers.append(answer)
        if self._ok(answer):
            assert answer is not None
            with self.acked.lock:
                self.acked.coze_messages.add(int(answer[1]["data"]["id"]))
        return answers


def _number(name: str) -> int:
    assert name.startswith("n"), name
    return int(name[1:])


def test_sigkill_under_load_loses_no_acknowledged_write(
    database_url: str, credentials: Credentials, tmp_path: Path
) -> None:
    acked = Acknowledged()
    renamers = 2
    with serve(database_url, tmp_path / "setup") as served:
        client = Client(served, credentials)
        targets = [created_id(client.volc("CreateConversation", group("n0"))) for _ in range(2)]
        client.close()
    assert all(t is not None for t in targets)
    writers = Writers(acked, [t for t in targets if t is not None])
    load = Load(writers.work, threads=4 * renamers)

    for cycle in range(KILL_CYCLES):
        with serve(database_url, tmp_path / f"cycle{cycle}") as served:
            load.start(functools.partial(Client, served, credentials))
            try:
                time.sleep(LOAD_SECONDS)
                served.process.send_signal(signal.SIGKILL)  # mid-load, no warning
                served.process.wait(timeout=10)
                time.sleep(0.1)
            finally:
                load.stop()
        assert served.process.returncode == -signal.SIGKILL

    assert acked.failures == []  # every answer that came was a success
    assert sum(a is None for a in load.answers) >= KILL_CYCLES  # the kills did cut requests off
    assert acked.creates and acked.renamed and acked.coze_renamed and acked.coze_messages
    assert all(len(ids) == 1 for ids in acked.keyed.values()), dict(acked.keyed)

    with serve(database_url, tmp_path / "after") as served:
        client = Client(served, credentials)
        try:
            again = {key: client.volc("CreateConversation", group("again", IdempotentId=key))
                     for key in KEYS}  # fmt: skip
        finally:
            client.close()
    for key, ids in acked.keyed.items():
        answer = again[key]
        assert answer is not None and answer[0] == 200, answer
        result = answer[1]["Result"]
        assert (result["Exist"], result["ConversationShortId"]) == (True, *ids), (key, result)

    with connection(database_url) as conn:
        names = dict(
            conn.execute(
                sa.select(conversations.c.id, conversations.c.name).where(
                    conversations.c.app_id == credentials.tenant.app_id
                )
            ).all()
        )
        stored_messages = set(
            conn.execute(
                sa.select(messages.c.id).where(messages.c.id.in_(acked.coze_messages))
            ).scalars()
        )
    keyed = set().union(*acked.keyed.values())
    assert acked.creates | keyed <= set(names), sorted((acked.creates | keyed) - set(names))[:5]
    for conversation, n in {**acked.renamed, **acked.coze_renamed}.items():
        assert _number(names[conversation]) >= n, (conversation, names[conversation], n)
    assert stored_messages == acked.coze_messages
