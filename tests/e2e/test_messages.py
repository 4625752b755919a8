"""End to end: messages, driven by the official clients.

The Volcengine message actions (volcengine-im.md §6.5, §7.15-7.23: SendMessage,
GetConversationMessages, GetMessages, RecallMessage, DeleteConversationMessage, DeleteMessage,
ModifyMessage, ModifyParticipantReadIndex, GetParticipantReadIndex) through both official Python
clients (``volcengine`` ``Service.json`` and ``volcenginesdkcore`` ``UniversalApi``), and the same
messages through cozepy 0.20.0 with each member's token: one store for both dialects.

Where the reference leaves a choice, these tests pin convhub's decisions:

- SendMessage: the sender is a current member (``ParticipantNotInConversation``); a member muted
  until a time in the future (``BlockTime``, seconds) is refused with ``InvalidParam``;
  ``ClientMsgId`` makes a send idempotent within the conversation (same ``MessageId``, no new index,
  also under concurrency, across restarts and across processes); ``IndexInConversation`` is
  1, 2, 3 … with no gaps; ``CreateTime`` (ms) defaults to now; a quote must name a message of the
  conversation (``MessageNotFound``); ``Priority`` outside 0-2 and ``Ext`` over the conversation
  limits are ``InvalidParam``.
- GetConversationMessages: ``Limit`` ≤ 0 is ``InvalidParam``, > 20 is 20; forward from the index
  ``Cursor`` (``NewCursor`` = last + 1), backward down from it (``Cursor`` ≤ 0 = newest,
  ``NewCursor`` = last - 1); the server's view leaves out recalled messages and those deleted with
  DeleteConversationMessage, and keeps the ones restricted with VisibleUsers/InvisibleUsers or
  deleted by one member; a live group reads backwards only.
- GetMessages: request order, unknown/recalled/deleted-for-all left out, 1-100 IDs.
- RecallMessage, DeleteConversationMessage, ModifyMessage, the read indexes: see their tests.
- Coze: a member's token lists the conversation's messages as that member sees them.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from volcengine.ApiInfo import ApiInfo

from convhub.config import Settings, parse_rate_limits
from tests.e2e import test_volc_sdks as volc_sdks
from tests.e2e.test_cozepy import (
    INVALID_CONVERSATION,
    Coze,
    CozeAPIError,
    mint,
    sync_coze,
)
from tests.e2e.test_cozepy import refused as coze_refused
from tests.e2e.test_volc_sdks import (
    Answer,
    CoreSdk,
    Served,
    assert_stopped_cleanly,
    convhub_serve,
)
from tests.support import (
    NO_LIMITS,
    VERSION,
    LiveServer,
    Tenant,
    new_tenant,
    required_postgres,
)

GROUP, LIVE = 2, 100
TEXT, IMAGE, CUSTOM = 10001, 10003, 10012
OWNER, ALICE, BOB = 40001, 40002, 40003
MEMBERS = (OWNER, ALICE, BOB)
STRANGER = 49999
UNKNOWN_CONVERSATION = 7370000000000000001
UNKNOWN_MESSAGE = 7370000000000000002
PAGE = 20  # GetConversationMessages' largest page
BULK = 1000  # messages of the main scenario
THREADS = 16
MESSAGE_ACTIONS = (
    "CreateConversation",
    "DestroyConversation",
    "BatchAddConversationParticipant",
    "BatchDeleteConversationParticipant",
    "BatchModifyConversationParticipant",
    "GetConversationSetting",
    "SendMessage",
    "GetConversationMessages",
    "GetMessages",
    "RecallMessage",
    "DeleteConversationMessage",
    "DeleteMessage",
    "ModifyMessage",
    "ModifyParticipantReadIndex",
    "GetParticipantReadIndex",
)


# --------------------------------------------------------------------------- the two clients


class VolcSdk(volc_sdks.VolcSdk):
    """volc-sdk-python's ``Service`` with the message actions declared as well."""

    def __init__(self, host: str, access_key: str, secret_key: str) -> None:
        super().__init__(host, access_key, secret_key)
        self.service.api_info.update(
            {
                a: ApiInfo("POST", "/", {"Action": a, "Version": VERSION}, {}, {})
                for a in MESSAGE_ACTIONS
            }
        )


Sdk = VolcSdk | CoreSdk
SDK_KINDS: dict[str, Callable[[str, str, str], Sdk]] = {
    "volcengine": VolcSdk,
    # No retries: a server error in a race is seen as one rather than papered over.
    "volcenginesdkcore": lambda host, ak, sk: CoreSdk(host, ak, sk, retries=0),
}


def ok(client: Sdk, action: str, body: Any) -> dict[str, Any]:
    return volc_sdks.ok(client, action, body)


def refused(client: Sdk, action: str, body: Any, code: str) -> Answer:
    """The call failed with ``code``, a non-zero integer CodeN and (where seen) HTTP 400."""
    answer = client.call(action, body)
    assert not answer.ok, f"{client.name} {action} {body} should have failed with {code}: {answer}"
    assert answer.error is not None
    assert answer.error["Code"] == code, f"{action} {body}: expected {code}, got {answer.error}"
    assert type(answer.error["CodeN"]) is int and answer.error["CodeN"] != 0, answer.error
    if answer.status is not None:
        assert answer.status == (429 if code == "FlowLimitExceeded" else 400), answer
    return answer


@pytest.fixture(params=sorted(SDK_KINDS))
def sdk(request: pytest.FixtureRequest, server: LiveServer, tenant: Tenant) -> Iterator[Sdk]:
    client = SDK_KINDS[request.param](server.host, tenant.access_key, tenant.secret_key)
    yield client
    client.close()


def no_limits(url: str) -> Settings:
    return Settings(database_url=url, rate_limits=parse_rate_limits(NO_LIMITS))


# --------------------------------------------------------------------------- conversations


def make_group(
    client: Sdk, tenant: Tenant, members: Sequence[int] = MEMBERS, *, kind: int = GROUP
) -> int:
    """A conversation owned by ``members[0]`` with the others added."""
    made = ok(
        client,
        "CreateConversation",
        {
            "AppId": tenant.app_id,
            "OwnerUserId": members[0],
            "ConversationCoreInfo": {"ConversationType": kind, "Name": "messages"},
        },
    )
    conversation_id = int(made["ConversationShortId"])
    if len(members) > 1:
        add_members(client, tenant, conversation_id, members[1:])
    return conversation_id


def add_members(
    client: Sdk, tenant: Tenant, conversation_id: int, users: Iterable[int], **fields: Any
) -> None:
    added = ok(
        client,
        "BatchAddConversationParticipant",
        {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "Operator": OWNER,
            "ParticipantInfos": [{"ParticipantUserId": u, **fields} for u in users],
        },
    )
    assert added["FailedUserIds"] == [], added


def remove_members(client: Sdk, tenant: Tenant, conversation_id: int, users: list[int]) -> None:
    removed = ok(
        client,
        "BatchDeleteConversationParticipant",
        {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "Operator": OWNER,
            "ParticipantUserIds": users,
        },
    )
    assert removed["FailedUserIds"] == [], removed


# --------------------------------------------------------------------------- messages


def text(words: str) -> str:
    return json.dumps({"text": words})


def send_body(
    tenant: Tenant,
    conversation_id: int,
    sender: int,
    content: str,
    *,
    msg_type: int = TEXT,
    **fields: Any,
) -> dict[str, Any]:
    return {
        "AppId": tenant.app_id,
        "ConversationShortId": conversation_id,
        "Sender": sender,
        "MsgType": msg_type,
        "Content": content,
        **fields,
    }


def send(
    client: Sdk,
    tenant: Tenant,
    conversation_id: int,
    sender: int,
    content: str,
    **fields: Any,
) -> int:
    result = ok(
        client, "SendMessage", send_body(tenant, conversation_id, sender, content, **fields)
    )
    assert set(result) == {"MessageId"}, result
    message_id = result["MessageId"]
    assert type(message_id) is int and message_id > 0, result
    return message_id


def get_messages(
    client: Sdk, tenant: Tenant, conversation_id: int, ids: Sequence[int]
) -> list[dict[str, Any]]:
    """GetMessages for any number of IDs, 100 a call (its largest batch)."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(ids), 100):
        body = {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageIds": list(ids[start : start + 100]),
        }
        found += ok(client, "GetMessages", body)["Messages"]
    return found


def get_one(client: Sdk, tenant: Tenant, conversation_id: int, message_id: int) -> dict[str, Any]:
    (message,) = get_messages(client, tenant, conversation_id, [message_id])
    assert message["MessageId"] == message_id
    return message


def page(
    client: Sdk,
    tenant: Tenant,
    conversation_id: int,
    cursor: int,
    *,
    limit: int = PAGE,
    reverse: int | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "AppId": tenant.app_id,
        "ConversationShortId": conversation_id,
        "Cursor": cursor,
        "Limit": limit,
    }
    if reverse is not None:
        body["Reverse"] = reverse
    result = ok(client, "GetConversationMessages", body)
    assert type(result["HasMore"]) is bool, result
    assert type(result["NewCursor"]) is int, result
    assert isinstance(result["Messages"], list), result
    return result


def walk(
    client: Sdk,
    tenant: Tenant,
    conversation_id: int,
    *,
    backward: bool,
    start: int = 0,
    expected_count: int | None = None,
) -> list[dict[str, Any]]:
    """Every message from ``start`` on, page by page (Limit 20), following ``NewCursor`` until
    ``HasMore`` is false. Each page holds 20 messages while more lie beyond, the indexes run
    strictly one way, and ``NewCursor`` is the last index ± 1."""
    bound = (expected_count or 2000) // PAGE + 3
    cursor, seen = start, []
    for _ in range(bound):
        got = page(client, tenant, conversation_id, cursor, reverse=1 if backward else 0)
        messages = got["Messages"]
        indexes = [m["IndexInConversation"] for m in messages]
        assert len(messages) <= PAGE
        if backward:
            assert indexes == sorted(indexes, reverse=True) and len(set(indexes)) == len(indexes)
            if cursor > 0:
                assert all(i <= cursor for i in indexes), (cursor, indexes)
        else:
            assert indexes == sorted(indexes) and len(set(indexes)) == len(indexes)
            assert all(i >= cursor for i in indexes), (cursor, indexes)
        if got["HasMore"]:
            assert len(messages) == PAGE, f"a page short of Limit while HasMore: {indexes}"
        if messages:
            step = -1 if backward else 1
            assert got["NewCursor"] == indexes[-1] + step, (got["NewCursor"], indexes)
        seen += messages
        if not got["HasMore"]:
            break
        cursor = got["NewCursor"]
    else:
        pytest.fail(f"GetConversationMessages still had more after {bound} pages")
    if expected_count is not None:
        assert len(seen) == expected_count
    return seen


# --------------------------------------------------------------------------- what was sent


@dataclass
class Sent:
    """One message as the tests know it; checked field by field against what comes back."""

    message_id: int
    sender: int
    content: str
    msg_type: int = TEXT
    ext: dict[str, str] = field(default_factory=dict)
    client_msg_id: str | None = None
    create_time: int | None = None  # given in the request
    index: int | None = None
    visible: tuple[int, ...] = ()
    invisible: tuple[int, ...] = ()
    recalled: bool = False
    deleted: int | None = None  # DeleteConversationMessage's DeleteType
    hidden_for: set[int] = field(default_factory=set)  # DeleteMessage

    @property
    def server_sees(self) -> bool:
        return not self.recalled and self.deleted is None

    def seen_by(self, user: int) -> bool:
        """The Coze view of one member."""
        if self.recalled or self.deleted == 0 or user in self.hidden_for:
            return False
        if self.deleted == 1 and user != self.sender:
            return False
        if self.visible and user not in self.visible:
            return False
        return user not in self.invisible


def check_message(
    got: dict[str, Any],
    sent: Sent,
    *,
    tenant: Tenant,
    conversation_id: int,
    kind: int = GROUP,
    since_ms: int,
    until_ms: int,
) -> None:
    """A §6.5 Message, exactly as sent (exact JSON types: the Go client rejects others)."""
    assert got["MessageId"] == sent.message_id
    assert (got["AppId"], got["ConversationShortId"], got["ConversationType"]) == (
        tenant.app_id,
        conversation_id,
        kind,
    )
    assert (got["MsgType"], got["Content"], got["Sender"]) == (
        sent.msg_type,
        sent.content,
        sent.sender,
    ), got
    assert got.get("SenderStr", str(sent.sender)) == str(sent.sender)
    assert got["Status"] == 0, got
    assert (got.get("Ext") or {}) == sent.ext, (got, sent.ext)
    for name in ("AppId", "ConversationShortId", "MessageId", "CreateTime", "Sender"):
        assert type(got[name]) is int, (name, got)
    if sent.create_time is not None:
        assert got["CreateTime"] == sent.create_time, got
    else:
        assert since_ms - 1000 <= got["CreateTime"] <= until_ms + 1000, (since_ms, got)
    if sent.client_msg_id is not None:
        assert got["ClientMsgId"] == sent.client_msg_id, got
    index = got["IndexInConversation"]
    assert type(index) is int and index > 0, got
    if sent.index is not None:
        assert index == sent.index, (got, sent)


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------- threads


class Clients:
    """One client per thread of a pool, kinds alternating thread by thread."""

    def __init__(self, makers: Sequence[Callable[[], Sdk]]) -> None:
        self._makers = itertools.cycle(makers)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._made: list[Sdk] = []

    def get(self) -> Sdk:
        client: Sdk | None = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                client = next(self._makers)()
                self._made.append(client)
            self._local.client = client
        return client

    def close(self) -> None:
        for client in self._made:
            client.close()


def call_all(
    makers: Sequence[Callable[[], Sdk]],
    calls: Sequence[tuple[str, dict[str, Any]]],
    *,
    threads: int = THREADS,
) -> list[Answer]:
    clients = Clients(makers)
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda call: clients.get().call(*call), calls))
    finally:
        clients.close()


def both_kinds(host: str, tenant: Tenant) -> list[Callable[[], Sdk]]:
    return [
        lambda kind=kind: SDK_KINDS[kind](host, tenant.access_key, tenant.secret_key)
        for kind in sorted(SDK_KINDS)
    ]


def bulk_plan(
    tenant: Tenant, conversation_id: int, count: int, *, seed: int
) -> tuple[list[dict[str, Any]], list[tuple[int, dict[str, Any]]]]:
    """``count`` sends by the three members, and the order to send them in: every even one is
    sent twice with the same ClientMsgId, shuffled so that a retry may race its first send."""
    bodies = []
    for n in range(count):
        extra: dict[str, Any] = {"Ext": {"n": str(n)}}
        if n % 4 != 3:
            extra["ClientMsgId"] = f"bulk-{n}"
        if n % 10 == 1:
            extra["CreateTime"] = 1_700_000_000_000 + n
        if n % 5 == 0:
            body = send_body(
                tenant,
                conversation_id,
                MEMBERS[n % 3],
                json.dumps({"url": f"https://img.example/{n}.png"}),
                msg_type=IMAGE,
                **extra,
            )
        else:
            body = send_body(tenant, conversation_id, MEMBERS[n % 3], text(f"m{n}"), **extra)
        bodies.append(body)
    order = [(n, bodies[n]) for n in range(count)]
    order += [(n, dict(bodies[n])) for n in range(0, count, 2)]
    random.Random(seed).shuffle(order)
    return bodies, order


def sent_from(body: dict[str, Any], message_id: int) -> Sent:
    return Sent(
        message_id=message_id,
        sender=body["Sender"],
        content=body["Content"],
        msg_type=body["MsgType"],
        ext=dict(body.get("Ext") or {}),
        client_msg_id=body.get("ClientMsgId"),
        create_time=body.get("CreateTime"),
    )


def send_concurrently(
    host: str, tenant: Tenant, conversation_id: int, count: int, *, seed: int
) -> list[Sent]:
    """The bulk sends (``bulk_plan``) from a pool of threads; the retries answered the MessageId
    of their first send, and the ``count`` messages are distinct."""
    bodies, order = bulk_plan(tenant, conversation_id, count, seed=seed)
    answers = call_all(both_kinds(host, tenant), [("SendMessage", body) for _, body in order])
    failed = [(n, a) for (n, _), a in zip(order, answers, strict=True) if not a.ok]
    assert not failed, f"{len(failed)} sends failed, e.g. {failed[:3]}"
    ids: dict[int, set[int]] = {}
    for (n, _), answer in zip(order, answers, strict=True):
        assert answer.result is not None
        ids.setdefault(n, set()).add(answer.result["MessageId"])
    differing = {n: got for n, got in ids.items() if len(got) != 1}
    assert not differing, f"retries with one ClientMsgId got other MessageIds: {differing}"
    distinct = {next(iter(ids[n])) for n in range(count)}
    assert len(distinct) == count, f"{count} sends made {len(distinct)} distinct messages"
    return [sent_from(bodies[n], next(iter(ids[n]))) for n in range(count)]


@contextmanager
def watching_the_newest(
    host: str, tenant: Tenant, conversation_id: int
) -> Iterator[list[list[int]]]:
    """A thread that reads the newest page (Reverse 1, Cursor 0) again and again until the block
    ends; yields the indexes of each non-empty page it saw."""
    glimpses: list[list[int]] = []
    stop = threading.Event()
    problems: list[BaseException] = []

    def read() -> None:
        client = SDK_KINDS["volcenginesdkcore"](host, tenant.access_key, tenant.secret_key)
        try:
            while not stop.is_set() and len(glimpses) < 10_000:
                got = page(client, tenant, conversation_id, 0, reverse=1)
                indexes = [m["IndexInConversation"] for m in got["Messages"]]
                if indexes:
                    glimpses.append(indexes)
                time.sleep(0.01)
        except BaseException as error:  # handed to the test below
            problems.append(error)
        finally:
            client.close()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield glimpses
    finally:
        stop.set()
        reader.join(timeout=30)
    assert not reader.is_alive(), "the reader did not stop"
    if problems:
        raise problems[0]


def assert_indexes(
    client: Sdk,
    tenant: Tenant,
    conversation_id: int,
    sent: list[Sent],
    *,
    since_ms: int,
    until_ms: int,
) -> None:
    """GetMessages answers every message as sent; the indexes are exactly 1..len(sent)."""
    got = get_messages(client, tenant, conversation_id, [s.message_id for s in sent])
    assert [m["MessageId"] for m in got] == [s.message_id for s in sent]  # request order
    for message, each in zip(got, sent, strict=True):
        check_message(
            message,
            each,
            tenant=tenant,
            conversation_id=conversation_id,
            since_ms=since_ms,
            until_ms=until_ms,
        )
        each.index = message["IndexInConversation"]
    indexes = sorted(s.index for s in sent if s.index is not None)
    assert indexes == list(range(1, len(sent) + 1)), "indexes with gaps or duplicates"


# --------------------------------------------------------------------------- Coze


def coze_view(coze: Coze, conversation_id: int, **options: Any) -> list[Any]:
    """Every page of ``messages.list`` (by default newest first, 50 a page), as cozepy fetches
    them: each page full while ``has_more``, the last one saying there is no more."""
    pager = coze.conversations.messages.list(conversation_id=str(conversation_id), **options)
    pages = list(itertools.islice(pager.iter_pages(), 200))
    assert len(pages) < 200, "the Coze pager did not stop"
    limit = options.get("limit", 50)
    for number, each in enumerate(pages):
        ids = [m.id for m in each.items]
        assert each.has_more is (number < len(pages) - 1), (number, len(pages))
        if each.has_more:
            assert len(ids) == limit, f"page {number} short of {limit} while has_more"
        if ids:
            assert (each.first_id, each.last_id) == (ids[0], ids[-1])
    return [m for p in pages for m in p.items]


def content_type(msg_type: int) -> str:
    return "text" if msg_type == TEXT else "object_string"


def check_coze_view(coze: Coze, user: int, conversation_id: int, messages: list[Sent]) -> None:
    """``user``'s token lists exactly what is visible to that member, each message once,
    newest first, with Coze's names for the Volcengine fields."""
    listed = coze_view(coze, conversation_id)
    ids = [int(m.id) for m in listed]
    assert len(ids) == len(set(ids)), f"{user}: a message listed twice"
    by_id = {s.message_id: s for s in messages}
    expected = {s.message_id for s in messages if s.seen_by(user)}
    unexpected = [by_id.get(i, i) for i in ids if i not in expected]
    missing = [by_id[i] for i in expected - set(ids)]
    assert not unexpected and not missing, (
        f"member {user}: listed but not visible to it: {unexpected[:5]}; "
        f"visible but not listed: {missing[:5]}"
    )
    by_index = sorted(ids, key=lambda i: by_id[i].index or 0, reverse=True)
    assert ids in (by_index, sorted(ids, reverse=True)), f"{user}: not newest first"
    for message in listed:
        sent = by_id[int(message.id)]
        assert message.conversation_id == str(conversation_id)
        assert message.content == sent.content, (message, sent)
        assert message.meta_data == sent.ext, (message, sent)
        assert message.content_type == content_type(sent.msg_type), (message, sent)


# =========================================================================== 1. the main scenario


def test_a_group_of_three_sends_a_thousand_messages(
    server: LiveServer, tenant: Tenant, database_url: str
) -> None:
    volc = SDK_KINDS["volcengine"](server.host, tenant.access_key, tenant.secret_key)
    core = SDK_KINDS["volcenginesdkcore"](server.host, tenant.access_key, tenant.secret_key)
    try:
        _main_scenario(server, tenant, database_url, volc, core)
    finally:
        volc.close()
        core.close()


def _main_scenario(
    server: LiveServer, tenant: Tenant, database_url: str, volc: Sdk, core: Sdk
) -> None:
    conversation_id = make_group(volc, tenant)
    started = now_ms()

    # --- 1,000 messages, 500 of them sent twice, from 16 threads and both clients at once,
    # while a reader keeps reading the newest page: it never sees a hole that fills later.
    with watching_the_newest(server.host, tenant, conversation_id) as glimpses:
        sent = send_concurrently(server.host, tenant, conversation_id, BULK, seed=1)
    finished = now_ms()
    assert len(glimpses) >= 5, f"the reader read only {len(glimpses)} pages during the sends"
    for glimpse in glimpses:
        assert glimpse == list(range(glimpse[0], glimpse[0] - len(glimpse), -1)), glimpse
        assert len(glimpse) == min(PAGE, glimpse[0]), glimpse
    assert [g[0] for g in glimpses] == sorted(g[0] for g in glimpses)  # never goes back
    assert_indexes(core, tenant, conversation_id, sent, since_ms=started, until_ms=finished)
    by_index = {s.index: s for s in sent}
    in_order = [by_index[i].message_id for i in range(1, BULK + 1)]

    forward = walk(volc, tenant, conversation_id, backward=False, expected_count=BULK)
    assert [m["MessageId"] for m in forward] == in_order
    assert [m["IndexInConversation"] for m in forward] == list(range(1, BULK + 1))
    backward = walk(core, tenant, conversation_id, backward=True, expected_count=BULK)
    assert [m["MessageId"] for m in backward] == in_order[::-1]
    from_one = page(core, tenant, conversation_id, 1)
    assert [m["IndexInConversation"] for m in from_one["Messages"]] == list(range(1, 21))
    assert from_one["HasMore"] is True and from_one["NewCursor"] == 21
    middle = page(volc, tenant, conversation_id, 500, reverse=1)
    assert [m["IndexInConversation"] for m in middle["Messages"]] == list(range(500, 480, -1))
    assert middle["HasMore"] is True and middle["NewCursor"] == 480
    past_end = page(volc, tenant, conversation_id, BULK + 1)
    assert past_end["Messages"] == [] and past_end["HasMore"] is False
    for message, each in zip(forward, (by_index[i] for i in range(1, BULK + 1)), strict=True):
        check_message(
            message,
            each,
            tenant=tenant,
            conversation_id=conversation_id,
            since_ms=started,
            until_ms=finished,
        )

    # --- quotes, sent while the quoted messages are still visible.
    def quote(of: int, sender: int) -> Sent:
        target = by_index[of]
        hint = f"quoting {of}"
        message_id = send(
            volc,
            tenant,
            conversation_id,
            sender,
            text(f"re {of}"),
            RefMsgInfo={"ReferencedMessageId": target.message_id, "Hint": hint},
        )
        return Sent(message_id, sender, text(f"re {of}"), index=len(sent) + 1)

    quotes: dict[int, Sent] = {}
    for of in (7, 13, 2):
        quotes[of] = quote(of, MEMBERS[of % 3])
        sent.append(quotes[of])

    def ref_statuses() -> dict[int, int]:
        got = get_messages(core, tenant, conversation_id, [q.message_id for q in quotes.values()])
        statuses = {}
        for (of, _), message in zip(quotes.items(), got, strict=True):
            ref = message["RefMsgInfo"]
            assert ref["ReferencedMessageId"] == by_index[of].message_id
            assert ref["Hint"] == f"quoting {of}"
            assert ref["ReferencedMessageType"] == by_index[of].msg_type
            statuses[of] = ref["Status"]
        return statuses

    assert ref_statuses() == {7: 0, 13: 0, 2: 0}

    # --- recall some (by their sender, the owner, an admin), delete some for all (either
    # DeleteType), delete some for one member, modify some.
    for j, i in enumerate(range(7, BULK + 1, 50)):
        target = by_index[i]
        recaller, role = [(target.sender, 0), (OWNER, 1), (ALICE, 2)][j % 3]
        body = {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageId": target.message_id,
            "ParticipantUserId": recaller,
        }
        if role or j % 2:
            body["RecallRole"] = role
        assert ok(volc if j % 2 else core, "RecallMessage", body) == {}
        target.recalled = True
    for j, i in enumerate(range(13, BULK + 1, 50)):
        body = {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageId": by_index[i].message_id,
        }
        if j % 2:
            body["DeleteType"] = 0
        assert ok(core if j % 2 else volc, "DeleteConversationMessage", body) == {}
        by_index[i].deleted = 0
    for j, i in enumerate(range(19, BULK + 1, 50)):
        body = {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageId": by_index[i].message_id,
            "DeleteType": 1,
        }
        assert ok(volc if j % 2 else core, "DeleteConversationMessage", body) == {}
        by_index[i].deleted = 1
    for j, i in enumerate(range(23, BULK + 1, 50)):
        who = MEMBERS[j % 3]
        body = {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "ParticipantUserId": who,
            "MessageId": by_index[i].message_id,
        }
        assert ok(core if j % 2 else volc, "DeleteMessage", body) == {}
        by_index[i].hidden_for.add(who)
    for j, i in enumerate(range(29, BULK + 1, 50)):
        target = by_index[i]
        body = {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageId": target.message_id,
            "Ext": {"n": f"was {i}", "edited": "yes"},
        }
        if j % 2:
            body["Content"] = text(f"edited {i}")
            target.content = body["Content"]
        assert ok(volc if j % 2 else core, "ModifyMessage", body) == {}
        target.ext.update(body["Ext"])
    untouched = by_index[31]
    assert (
        ok(
            core,
            "ModifyMessage",
            {
                "AppId": tenant.app_id,
                "ConversationShortId": conversation_id,
                "MessageId": untouched.message_id,
            },
        )
        == {}
    )
    assert ref_statuses() == {7: 3, 13: 4, 2: 0}

    # --- messages only some members see.
    restricted = [
        (OWNER, {"VisibleUsers": [OWNER, ALICE]}),
        (ALICE, {"InvisibleUsers": [OWNER]}),
        (BOB, {"VisibleUsers": [BOB]}),
        (ALICE, {"VisibleUsersStr": [str(ALICE), str(BOB)]}),
        (BOB, {"InvisibleUsers": [OWNER, ALICE], "MentionedUsers": [ALICE]}),
    ]
    for sender, fields in restricted:
        content = text(f"restricted {len(sent) + 1}")
        message_id = send(core, tenant, conversation_id, sender, content, **fields)
        visible = fields.get("VisibleUsers") or [int(u) for u in fields.get("VisibleUsersStr", [])]
        sent.append(
            Sent(
                message_id,
                sender,
                content,
                index=len(sent) + 1,
                visible=tuple(visible),
                invisible=tuple(fields.get("InvisibleUsers", [])),
            )
        )

    # --- the server's view: everything but recalled and deleted-for-all messages.
    shown = [s for s in sent if s.server_sees]
    assert len(shown) == len(sent) - 60
    shown_ids = [s.message_id for s in sorted(shown, key=lambda s: s.index or 0)]
    forward = walk(core, tenant, conversation_id, backward=False, expected_count=len(shown))
    assert [m["MessageId"] for m in forward] == shown_ids
    backward = walk(volc, tenant, conversation_id, backward=True, expected_count=len(shown))
    assert [m["MessageId"] for m in backward] == shown_ids[::-1]
    everything = {s.message_id: s for s in sent}
    for message in forward:
        check_message(
            message,
            everything[message["MessageId"]],
            tenant=tenant,
            conversation_id=conversation_id,
            since_ms=started,
            until_ms=now_ms(),
        )
    asked = [s.message_id for s in sent[::-1]] + [UNKNOWN_MESSAGE]
    random.Random(2).shuffle(asked)
    got = get_messages(volc, tenant, conversation_id, asked)
    assert [m["MessageId"] for m in got] == [i for i in asked if i in set(shown_ids)]
    got_untouched = get_one(core, tenant, conversation_id, untouched.message_id)
    assert (got_untouched["Content"], got_untouched["Ext"]) == (untouched.content, untouched.ext)

    # --- each member's view through Coze, then messages written through Coze.
    tokens = {user: mint(database_url, tenant.account, user=str(user)).token for user in MEMBERS}
    with ExitStack() as stack:
        coze = {user: stack.enter_context(sync_coze(server, tokens[user])) for user in MEMBERS}
        for user in MEMBERS:
            check_coze_view(coze[user], user, conversation_id, sent)
        # The same view oldest first, 20 a page: page ends fall among hidden messages too.
        newest_first = [m.id for m in coze_view(coze[ALICE], conversation_id)]
        oldest_first = coze_view(coze[ALICE], conversation_id, order="asc", limit=20)
        assert [m.id for m in oldest_first] == newest_first[::-1]

        made = coze[ALICE].conversations.messages.create(
            conversation_id=str(conversation_id),
            role="user",
            content="hello from coze",
            content_type="text",
            meta_data={"via": "coze"},
        )
        card = coze[BOB].conversations.messages.create(
            conversation_id=str(conversation_id),
            role="user",
            content='[{"type":"text","text":"a card"}]',
            content_type="object_string",
        )
        newest = page(volc, tenant, conversation_id, 0, limit=2, reverse=1)["Messages"]
        assert [m["MessageId"] for m in newest] == [int(card.id), int(made.id)]
        assert [m["IndexInConversation"] for m in newest] == [len(sent) + 2, len(sent) + 1]
        assert [(m["Sender"], m["MsgType"], m["Content"], m.get("Ext") or {}) for m in newest] == [
            (BOB, CUSTOM, '[{"type":"text","text":"a card"}]', {}),
            (ALICE, TEXT, "hello from coze", {"via": "coze"}),
        ]
        sent.append(Sent(int(made.id), ALICE, "hello from coze", ext={"via": "coze"}))
        sent.append(Sent(int(card.id), BOB, '[{"type":"text","text":"a card"}]', msg_type=CUSTOM))
        sent[-2].index, sent[-1].index = len(sent) - 1, len(sent)
        check_coze_view(coze[OWNER], OWNER, conversation_id, sent)

        # Strangers and members who left see nothing.
        with sync_coze(server, mint(database_url, tenant.account, user=str(STRANGER)).token) as x:
            coze_refused(INVALID_CONVERSATION, lambda: coze_view(x, conversation_id))
        remove_members(core, tenant, conversation_id, [BOB])
        coze_refused(INVALID_CONVERSATION, lambda: coze_view(coze[BOB], conversation_id))
        coze_refused(
            INVALID_CONVERSATION,
            lambda: coze[BOB].conversations.messages.create(
                conversation_id=str(conversation_id),
                role="user",
                content="not a member",
                content_type="text",
            ),
        )
    # Leaving hides nothing from the server's view.
    newest = page(core, tenant, conversation_id, 0, limit=1, reverse=1)["Messages"]
    assert [m["MessageId"] for m in newest] == [int(card.id)]


def test_coze_sees_the_conversations_of_members_and_creators(
    server: LiveServer, tenant: Tenant, database_url: str
) -> None:
    """A token's user reads a conversation it is a current member of, or created; a Coze
    conversation is a group like any other for the Volcengine message actions."""
    volc = SDK_KINDS["volcengine"](server.host, tenant.access_key, tenant.secret_key)
    volc.service.api_info["ModifyConversation"] = ApiInfo(
        "POST", "/", {"Action": "ModifyConversation", "Version": VERSION}, {}, {}
    )
    tokens = {
        user: mint(database_url, tenant.account, user=str(user)).token
        for user in (*MEMBERS, STRANGER)
    }
    with ExitStack() as stack:
        stack.callback(volc.close)
        coze = {user: stack.enter_context(sync_coze(server, tokens[user])) for user in tokens}

        # A Volcengine group: its creator hands it over and leaves, and still reads it.
        conversation_id = make_group(volc, tenant)
        first = send(volc, tenant, conversation_id, ALICE, text("first"))
        ok(
            volc,
            "ModifyConversation",
            {
                "AppId": tenant.app_id,
                "ConversationCoreInfo": {
                    "ConversationShortId": conversation_id,
                    "OwnerUserId": ALICE,
                },
            },
        )
        remove_members(volc, tenant, conversation_id, [OWNER, BOB])
        refused(
            volc,
            "SendMessage",
            send_body(tenant, conversation_id, OWNER, text("gone")),
            "ParticipantNotInConversation",
        )
        for reader in (OWNER, ALICE):
            assert [int(m.id) for m in coze_view(coze[reader], conversation_id)] == [first]
        for outsider in (BOB, STRANGER):
            coze_refused(
                INVALID_CONVERSATION, lambda o=outsider: coze_view(coze[o], conversation_id)
            )

        # A Coze conversation: members added through Volcengine read and write it through Coze.
        made = coze[BOB].conversations.create(bot_id="7390000000000000001")
        coze_id = int(made.id)
        asked = coze[BOB].conversations.messages.create(
            conversation_id=made.id, role="user", content="question", content_type="text"
        )
        coze_refused(INVALID_CONVERSATION, lambda: coze_view(coze[ALICE], coze_id))
        add_members(volc, tenant, coze_id, [ALICE])
        said = send(volc, tenant, coze_id, ALICE, text("from volc"), Ext={"k": "v"})
        answered = coze[ALICE].conversations.messages.create(
            conversation_id=made.id,
            role="assistant",
            content="answer",
            content_type="text",
            meta_data={"by": "alice"},
        )
        expected = [int(answered.id), said, int(asked.id)]
        for reader in (ALICE, BOB):
            assert [int(m.id) for m in coze_view(coze[reader], coze_id)] == expected
        listed = walk(volc, tenant, coze_id, backward=True)
        assert [(m["MessageId"], m["IndexInConversation"], m["Sender"]) for m in listed] == [
            (int(answered.id), 3, ALICE),
            (said, 2, ALICE),
            (int(asked.id), 1, BOB),
        ]
        assert (listed[0]["MsgType"], listed[0]["Content"], listed[0]["Ext"]) == (
            TEXT,
            "answer",
            {"by": "alice"},
        )


# =========================================================================== 2. errors


def test_send_message_errors(sdk: Sdk, tenant: Tenant) -> None:
    conversation_id = make_group(sdk, tenant)
    other = make_group(sdk, tenant)
    first = send(sdk, tenant, conversation_id, ALICE, text("first"))
    elsewhere = send(sdk, tenant, other, ALICE, text("elsewhere"))

    def body(sender: int = ALICE, **fields: Any) -> dict[str, Any]:
        return send_body(tenant, conversation_id, sender, text("refused"), **fields)

    refused(sdk, "SendMessage", body(STRANGER), "ParticipantNotInConversation")
    refused(
        sdk,
        "SendMessage",
        {**body(), "ConversationShortId": UNKNOWN_CONVERSATION},
        "ConversationNotFound",
    )
    for ref in (UNKNOWN_MESSAGE, elsewhere):
        refused(
            sdk,
            "SendMessage",
            body(RefMsgInfo={"ReferencedMessageId": ref, "Hint": "x"}),
            "MessageNotFound",
        )
    for priority in (-1, 3):
        refused(sdk, "SendMessage", body(Priority=priority), "InvalidParam")
    over_limits = [
        {f"k{i}": "v" for i in range(65)},
        {"k" * 129: "v"},
        {"k": "v" * 4097},
        {"": "v"},
    ]
    for ext in over_limits:
        refused(sdk, "SendMessage", body(Ext=ext), "InvalidParam")
    for missing in ("Sender", "MsgType"):
        without = body()
        del without[missing]
        refused(sdk, "SendMessage", without, "InvalidParam")

    # A member who left is no member; one muted until later is refused, until it is over.
    remove_members(sdk, tenant, conversation_id, [BOB])
    refused(sdk, "SendMessage", body(BOB), "ParticipantNotInConversation")
    muted = ok(
        sdk,
        "BatchModifyConversationParticipant",
        {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "Operator": OWNER,
            "ParticipantInfos": [{"ParticipantUserId": ALICE, "BlockTime": int(time.time()) + 600}],
        },
    )
    assert muted["FailedUserIds"] == []
    refused(sdk, "SendMessage", body(ALICE), "InvalidParam")
    refused(sdk, "SendMessage", body(ALICE, ClientMsgId="muted"), "InvalidParam")

    # Nothing of that was written, and no index was taken.
    assert [m["MessageId"] for m in walk(sdk, tenant, conversation_id, backward=False)] == [first]
    ok(
        sdk,
        "BatchModifyConversationParticipant",
        {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "Operator": OWNER,
            "ParticipantInfos": [{"ParticipantUserId": ALICE, "BlockTime": int(time.time()) - 5}],
        },
    )
    at_limits = {f"k{i}": "v" for i in range(63)} | {"k" * 128: "v" * 4096}
    second = send(sdk, tenant, conversation_id, ALICE, text("second"), Ext=at_limits, Priority=2)
    third = send(sdk, tenant, conversation_id, OWNER, text("third"), Priority=0)
    got = get_messages(sdk, tenant, conversation_id, [first, second, third])
    assert [m["IndexInConversation"] for m in got] == [1, 2, 3]
    assert got[1]["Ext"] == at_limits
    # The SDK sends 0 for an unset int64: the SenderStr twin names the sender then.
    twin = send(sdk, tenant, conversation_id, 0, text("twin"), SenderStr=str(OWNER))
    refused(sdk, "SendMessage", body(0, SenderStr=str(STRANGER)), "ParticipantNotInConversation")
    got_twin = get_one(sdk, tenant, conversation_id, twin)
    assert (got_twin["Sender"], got_twin["IndexInConversation"]) == (OWNER, 4)
    # The ClientMsgId of a refused send was not taken.
    unmuted = send(sdk, tenant, conversation_id, ALICE, text("now"), ClientMsgId="muted")
    assert get_one(sdk, tenant, conversation_id, unmuted)["IndexInConversation"] == 5
    quoted = send(
        sdk,
        tenant,
        conversation_id,
        OWNER,
        text("quoting"),
        RefMsgInfo={"ReferencedMessageId": first, "Hint": "first"},
    )
    assert get_one(sdk, tenant, conversation_id, quoted)["IndexInConversation"] == 6
    ref = get_one(sdk, tenant, conversation_id, quoted)["RefMsgInfo"]
    assert (ref["ReferencedMessageId"], ref["Hint"], ref["ReferencedMessageType"]) == (
        first,
        "first",
        TEXT,
    )
    assert ref["Status"] == 0


def test_dissolved_and_foreign_conversations_are_not_found(
    sdk: Sdk, server: LiveServer, tenant: Tenant, database_url: str
) -> None:
    stranger = new_tenant(database_url)
    theirs = SDK_KINDS[sdk.name](server.host, stranger.access_key, stranger.secret_key)
    try:
        foreign = make_group(theirs, stranger)
        foreign_message = send(theirs, stranger, foreign, ALICE, text("theirs"))
    finally:
        theirs.close()
    gone = make_group(sdk, tenant)
    gone_message = send(sdk, tenant, gone, ALICE, text("before"))
    destroy = {"AppId": tenant.app_id, "ConversationShortId": gone, "OwnerUserId": OWNER}
    assert ok(sdk, "DestroyConversation", destroy) == {}
    for conversation_id, message_id in ((gone, gone_message), (foreign, foreign_message)):
        base = {"AppId": tenant.app_id, "ConversationShortId": conversation_id}
        calls: list[tuple[str, dict[str, Any]]] = [
            ("SendMessage", send_body(tenant, conversation_id, ALICE, text("x"))),
            ("GetConversationMessages", {**base, "Cursor": 0, "Limit": 5}),
            ("GetMessages", {**base, "MessageIds": [message_id]}),
            ("RecallMessage", {**base, "MessageId": message_id, "ParticipantUserId": ALICE}),
            ("DeleteConversationMessage", {**base, "MessageId": message_id}),
            ("DeleteMessage", {**base, "MessageId": message_id, "ParticipantUserId": ALICE}),
            ("ModifyMessage", {**base, "MessageId": message_id, "Content": text("y")}),
            ("ModifyParticipantReadIndex", {**base, "ParticipantUserId": ALICE, "ReadIndex": 1}),
            ("GetParticipantReadIndex", base),
        ]
        for action, body in calls:
            refused(sdk, action, body, "ConversationNotFound")
    # The other account's AppId is not ours to use.
    refused(
        sdk,
        "SendMessage",
        {**send_body(tenant, foreign, ALICE, text("x")), "AppId": stranger.app_id},
        "NoAuth",
    )


def test_client_msg_id_is_per_conversation_and_takes_no_index(sdk: Sdk, tenant: Tenant) -> None:
    conversation_id = make_group(sdk, tenant)
    other = make_group(sdk, tenant)
    before = now_ms()
    first = send(sdk, tenant, conversation_id, ALICE, text("one"), ClientMsgId="c-1")
    # A retry, even one whose body differs, is the message already sent: not sent again.
    assert send(sdk, tenant, conversation_id, ALICE, text("one"), ClientMsgId="c-1") == first
    assert send(sdk, tenant, conversation_id, ALICE, text("two?"), ClientMsgId="c-1") == first
    second = send(sdk, tenant, conversation_id, BOB, text("two"), ClientMsgId="c-2")
    plain = send(sdk, tenant, conversation_id, BOB, text("three"))
    assert len({first, second, plain}) == 3
    # The same ClientMsgId in another conversation is another message.
    there = send(sdk, tenant, other, ALICE, text("one"), ClientMsgId="c-1")
    assert there not in {first, second, plain}

    listed = walk(sdk, tenant, conversation_id, backward=False)
    assert [(m["MessageId"], m["IndexInConversation"]) for m in listed] == [
        (first, 1),
        (second, 2),
        (plain, 3),
    ]
    assert listed[0]["Content"] == text("one") and listed[0]["ClientMsgId"] == "c-1"
    assert listed[1]["ClientMsgId"] == "c-2"
    assert before - 1000 <= listed[2]["CreateTime"] <= now_ms() + 1000  # ms, defaulting to now
    (alone,) = walk(sdk, tenant, other, backward=True)
    assert (alone["MessageId"], alone["IndexInConversation"]) == (there, 1)

    # The scope is the conversation, not the sender: another member's send with a ClientMsgId
    # already used there is that message.
    assert send(sdk, tenant, conversation_id, OWNER, text("mine?"), ClientMsgId="c-2") == second
    # A message recalled or deleted still exists: a late retry is still that message.
    recall = {
        "AppId": tenant.app_id,
        "ConversationShortId": conversation_id,
        "MessageId": second,
        "ParticipantUserId": BOB,
    }
    assert ok(sdk, "RecallMessage", recall) == {}
    assert send(sdk, tenant, conversation_id, BOB, text("two"), ClientMsgId="c-2") == second
    delete = {"AppId": tenant.app_id, "ConversationShortId": conversation_id, "MessageId": first}
    assert ok(sdk, "DeleteConversationMessage", delete) == {}
    assert send(sdk, tenant, conversation_id, ALICE, text("one"), ClientMsgId="c-1") == first
    last = send(sdk, tenant, conversation_id, OWNER, text("four"), ClientMsgId="c-4")
    listed = walk(sdk, tenant, conversation_id, backward=False)
    assert [(m["MessageId"], m["IndexInConversation"]) for m in listed] == [(plain, 3), (last, 4)]


def test_get_conversation_messages_parameters(sdk: Sdk, tenant: Tenant) -> None:
    conversation_id = make_group(sdk, tenant)
    ids = [send(sdk, tenant, conversation_id, MEMBERS[i % 3], text(str(i))) for i in range(25)]

    def body(**fields: Any) -> dict[str, Any]:
        return {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "Cursor": 0,
            "Limit": 5,
            **fields,
        }

    for limit in (0, -1):
        refused(sdk, "GetConversationMessages", body(Limit=limit), "InvalidParam")
    refused(
        sdk,
        "GetConversationMessages",
        body(ConversationShortId=UNKNOWN_CONVERSATION),
        "ConversationNotFound",
    )
    clamped = page(sdk, tenant, conversation_id, 0, limit=50)
    assert [m["MessageId"] for m in clamped["Messages"]] == ids[:20]
    assert (clamped["HasMore"], clamped["NewCursor"]) == (True, 21)
    rest = page(sdk, tenant, conversation_id, 21, limit=50)
    assert [m["MessageId"] for m in rest["Messages"]] == ids[20:]
    assert (rest["HasMore"], rest["NewCursor"]) == (False, 26)
    exact = page(sdk, tenant, conversation_id, 21, limit=5)
    assert [m["MessageId"] for m in exact["Messages"]] == ids[20:]
    assert exact["HasMore"] is False  # nothing lies beyond the 25th
    newest = page(sdk, tenant, conversation_id, 0, limit=3, reverse=1)
    assert [m["MessageId"] for m in newest["Messages"]] == ids[:-4:-1]
    assert (newest["HasMore"], newest["NewCursor"]) == (True, 22)
    below = page(sdk, tenant, conversation_id, 3, limit=5, reverse=1)
    assert [m["MessageId"] for m in below["Messages"]] == ids[2::-1]
    assert (below["HasMore"], below["NewCursor"]) == (False, 0)
    beyond = page(sdk, tenant, conversation_id, 1000, limit=2, reverse=1)
    assert [m["MessageId"] for m in beyond["Messages"]] == ids[:-3:-1]
    # An invalid Reverse is 0, forwards (the doc: "invalid => 0").
    invalid = page(sdk, tenant, conversation_id, 3, limit=2, reverse=5)
    assert [m["MessageId"] for m in invalid["Messages"]] == ids[2:4]
    negative = page(sdk, tenant, conversation_id, -7, limit=2, reverse=1)
    assert [m["MessageId"] for m in negative["Messages"]] == ids[:-3:-1]
    assert (negative["HasMore"], negative["NewCursor"]) == (True, 23)

    # Hidden messages at either end: HasMore says whether *shown* messages lie beyond.
    for index in (1, 2, 23, 24, 25):
        recall = {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageId": ids[index - 1],
            "ParticipantUserId": OWNER,
            "RecallRole": 1,
        }
        assert ok(sdk, "RecallMessage", recall) == {}
    head = page(sdk, tenant, conversation_id, 0, limit=20)
    assert [m["MessageId"] for m in head["Messages"]] == ids[2:22]
    assert (head["HasMore"], head["NewCursor"]) == (False, 23)
    tail = page(sdk, tenant, conversation_id, 0, limit=20, reverse=1)
    assert [m["MessageId"] for m in tail["Messages"]] == ids[21:1:-1]
    assert (tail["HasMore"], tail["NewCursor"]) == (False, 2)
    assert page(sdk, tenant, conversation_id, 23, limit=5)["Messages"] == []
    assert page(sdk, tenant, conversation_id, 2, limit=5, reverse=1)["HasMore"] is False

    # A live group reads backwards only.
    live = make_group(sdk, tenant, [OWNER], kind=LIVE)
    said = send(sdk, tenant, live, OWNER, text("on stage"), Priority=2)
    live_body = {**body(), "ConversationShortId": live}
    refused(sdk, "GetConversationMessages", live_body, "InvalidParam")
    refused(sdk, "GetConversationMessages", {**live_body, "Reverse": 0}, "InvalidParam")
    (message,) = page(sdk, tenant, live, 0, limit=5, reverse=1)["Messages"]
    assert (message["MessageId"], message["ConversationType"]) == (said, LIVE)


def test_get_messages_parameters(sdk: Sdk, tenant: Tenant) -> None:
    conversation_id = make_group(sdk, tenant)
    other = make_group(sdk, tenant)
    ids = [send(sdk, tenant, conversation_id, ALICE, text(str(i))) for i in range(3)]
    theirs = send(sdk, tenant, other, ALICE, text("theirs"))

    def body(message_ids: Any) -> dict[str, Any]:
        return {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageIds": message_ids,
        }

    for empty in ([], None):
        refused(sdk, "GetMessages", body(empty), "InvalidParam")
    refused(sdk, "GetMessages", body([ids[0]] * 50 + [UNKNOWN_MESSAGE] * 51), "InvalidParam")
    refused(
        sdk,
        "GetMessages",
        {**body(ids), "ConversationShortId": UNKNOWN_CONVERSATION},
        "ConversationNotFound",
    )
    hundred = [UNKNOWN_MESSAGE + i for i in range(97)] + [ids[2], theirs, ids[0]]
    got = ok(sdk, "GetMessages", body(hundred))["Messages"]
    assert [m["MessageId"] for m in got] == [ids[2], ids[0]]  # request order; others left out


def test_recall_rules(sdk: Sdk, tenant: Tenant) -> None:
    conversation_id = make_group(sdk, tenant)
    mine, theirs, third, fourth = (
        send(sdk, tenant, conversation_id, sender, text(f"by {sender}"))
        for sender in (ALICE, BOB, BOB, BOB)
    )

    def body(message_id: int, user: int, role: int | None = None) -> dict[str, Any]:
        request = {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageId": message_id,
            "ParticipantUserId": user,
        }
        if role is not None:
            request["RecallRole"] = role
        return request

    refused(sdk, "RecallMessage", body(theirs, ALICE), "InvalidParam")
    refused(sdk, "RecallMessage", body(theirs, ALICE, 0), "InvalidParam")
    refused(sdk, "RecallMessage", body(theirs, STRANGER, 1), "ParticipantNotInConversation")
    refused(sdk, "RecallMessage", body(UNKNOWN_MESSAGE, ALICE, 1), "MessageNotFound")
    refused(
        sdk,
        "RecallMessage",
        {**body(theirs, ALICE, 1), "ConversationShortId": UNKNOWN_CONVERSATION},
        "ConversationNotFound",
    )
    assert len(walk(sdk, tenant, conversation_id, backward=False)) == 4  # nothing recalled

    assert ok(sdk, "RecallMessage", body(mine, ALICE)) == {}
    assert ok(sdk, "RecallMessage", body(mine, ALICE, 0)) == {}  # twice: still a success
    assert ok(sdk, "RecallMessage", body(theirs, OWNER, 1)) == {}
    assert ok(sdk, "RecallMessage", body(third, ALICE, 2)) == {}
    assert [m["MessageId"] for m in walk(sdk, tenant, conversation_id, backward=True)] == [fourth]
    got = get_messages(sdk, tenant, conversation_id, [mine, theirs, third, fourth])
    assert [m["MessageId"] for m in got] == [fourth]
    # A member who left recalls nothing, not even its own messages.
    remove_members(sdk, tenant, conversation_id, [BOB])
    refused(sdk, "RecallMessage", body(fourth, BOB, 0), "ParticipantNotInConversation")
    assert get_one(sdk, tenant, conversation_id, fourth)["Status"] == 0
    # A recalled message cannot be modified, nor quoted as something visible.
    refused(
        sdk,
        "ModifyMessage",
        {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageId": mine,
            "Content": text("x"),
        },
        "MessageNotFound",
    )


def test_delete_conversation_message_rules(sdk: Sdk, tenant: Tenant) -> None:
    conversation_id = make_group(sdk, tenant)
    a, b = (send(sdk, tenant, conversation_id, ALICE, text(w)) for w in ("a", "b"))

    def body(message_id: int, **fields: Any) -> dict[str, Any]:
        return {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageId": message_id,
            **fields,
        }

    refused(sdk, "DeleteConversationMessage", body(UNKNOWN_MESSAGE), "MessageNotFound")
    refused(sdk, "DeleteConversationMessage", body(a, DeleteType=2), "InvalidParam")
    refused(
        sdk,
        "DeleteConversationMessage",
        body(a, ConversationShortId=UNKNOWN_CONVERSATION),
        "ConversationNotFound",
    )
    assert len(walk(sdk, tenant, conversation_id, backward=False)) == 2
    assert ok(sdk, "DeleteConversationMessage", body(a)) == {}
    assert ok(sdk, "DeleteConversationMessage", body(b, DeleteType=1)) == {}
    assert walk(sdk, tenant, conversation_id, backward=False) == []
    assert get_messages(sdk, tenant, conversation_id, [a, b]) == []
    for gone in (a, b):
        refused(
            sdk,
            "ModifyMessage",
            {**body(gone), "Ext": {"k": "v"}},
            "MessageNotFound",
        )

    # DeleteMessage is one member's: the server's view keeps the message.
    c = send(sdk, tenant, conversation_id, BOB, text("c"))
    one_sided = {"ParticipantUserId": ALICE}
    refused(sdk, "DeleteMessage", body(UNKNOWN_MESSAGE, **one_sided), "MessageNotFound")
    stranger = {"ParticipantUserId": STRANGER}
    refused(sdk, "DeleteMessage", body(c, **stranger), "ParticipantNotInConversation")
    assert ok(sdk, "DeleteMessage", body(c, **one_sided)) == {}
    assert [m["MessageId"] for m in walk(sdk, tenant, conversation_id, backward=True)] == [c]

    live = make_group(sdk, tenant, [OWNER], kind=LIVE)
    said, kept = (send(sdk, tenant, live, OWNER, text(w)) for w in ("x", "y"))
    live_body = {**body(said), "ConversationShortId": live}
    refused(sdk, "DeleteConversationMessage", {**live_body, "DeleteType": 1}, "InvalidParam")
    assert ok(sdk, "DeleteConversationMessage", {**live_body, "DeleteType": 0}) == {}
    listed = page(sdk, tenant, live, 0, reverse=1)["Messages"]
    assert [m["MessageId"] for m in listed] == [kept]


def test_modify_message_rules(sdk: Sdk, tenant: Tenant) -> None:
    conversation_id = make_group(sdk, tenant)
    message_id = send(
        sdk, tenant, conversation_id, ALICE, text("v1"), Ext={"key1": "value1", "key2": "value2"}
    )

    def modify(**fields: Any) -> dict[str, Any]:
        return ok(
            sdk,
            "ModifyMessage",
            {
                "AppId": tenant.app_id,
                "ConversationShortId": conversation_id,
                "MessageId": message_id,
                **fields,
            },
        )

    assert modify(Ext={"key1": "u", "key3": "v3"}) == {}  # the doc's example
    got = get_one(sdk, tenant, conversation_id, message_id)
    assert got["Ext"] == {"key1": "u", "key2": "value2", "key3": "v3"}
    assert got["Content"] == text("v1")
    assert modify(Content=text("v2")) == {}
    assert modify() == {}  # neither: a success that changes nothing
    got = get_one(sdk, tenant, conversation_id, message_id)
    assert (got["Content"], got["Ext"]) == (
        text("v2"),
        {"key1": "u", "key2": "value2", "key3": "v3"},
    )
    assert got["IndexInConversation"] == 1 and got["Sender"] == ALICE
    refused(
        sdk,
        "ModifyMessage",
        {
            "AppId": tenant.app_id,
            "ConversationShortId": conversation_id,
            "MessageId": UNKNOWN_MESSAGE,
            "Content": text("x"),
        },
        "MessageNotFound",
    )


def test_read_indexes(sdk: Sdk, tenant: Tenant) -> None:
    conversation_id = make_group(sdk, tenant)
    for i in range(10):
        send(sdk, tenant, conversation_id, MEMBERS[i % 3], text(str(i)))
    base = {"AppId": tenant.app_id, "ConversationShortId": conversation_id}

    def read_indexes() -> list[tuple[int, int]]:
        got = ok(sdk, "GetParticipantReadIndex", base)["ReadIndexes"]
        for item in got:
            assert type(item["ParticipantUserId"]) is int and type(item["ReadIndex"]) is int
        return sorted((i["ParticipantUserId"], i["ReadIndex"]) for i in got)

    def setting(user: int) -> int:
        info = ok(sdk, "GetConversationSetting", {**base, "ParticipantUserId": user})
        read: int = info["ConversationSettingInfo"]["ReadIndex"]
        return read

    def move(user: int, index: int) -> dict[str, Any]:
        return {**base, "ParticipantUserId": user, "ReadIndex": index}

    assert read_indexes() == []
    assert ok(sdk, "ModifyParticipantReadIndex", move(ALICE, 3)) == {}
    assert ok(sdk, "ModifyParticipantReadIndex", move(ALICE, 7)) == {}
    assert ok(sdk, "ModifyParticipantReadIndex", move(OWNER, 10)) == {}
    refused(sdk, "ModifyParticipantReadIndex", move(ALICE, 7), "InvalidParam")
    refused(sdk, "ModifyParticipantReadIndex", move(ALICE, 5), "InvalidParam")
    refused(sdk, "ModifyParticipantReadIndex", move(STRANGER, 4), "ParticipantNotInConversation")
    refused(
        sdk,
        "ModifyParticipantReadIndex",
        {**move(ALICE, 9), "ConversationShortId": UNKNOWN_CONVERSATION},
        "ConversationNotFound",
    )
    assert read_indexes() == [(OWNER, 10), (ALICE, 7)]
    assert (setting(OWNER), setting(ALICE), setting(BOB)) == (10, 7, 0)

    # A member added with a ReadIndex counts; one who left does not.
    add_members(sdk, tenant, conversation_id, [40004], ReadIndex=4)
    assert read_indexes() == [(OWNER, 10), (ALICE, 7), (40004, 4)]
    refused(sdk, "ModifyParticipantReadIndex", move(40004, 4), "InvalidParam")
    assert ok(sdk, "ModifyParticipantReadIndex", move(40004, 5)) == {}
    assert ok(sdk, "ModifyParticipantReadIndex", move(40004, 6)) == {}
    remove_members(sdk, tenant, conversation_id, [ALICE])
    assert read_indexes() == [(OWNER, 10), (40004, 6)]
    refused(sdk, "ModifyParticipantReadIndex", move(ALICE, 9), "ParticipantNotInConversation")
    assert ok(sdk, "ModifyParticipantReadIndex", move(BOB, 1)) == {}
    assert read_indexes() == [(OWNER, 10), (BOB, 1), (40004, 6)]
    assert setting(BOB) == 1


def test_racing_read_indexes_only_move_forward(server: LiveServer, tenant: Tenant) -> None:
    """Read indexes 1..60 of two members, shuffled, from 16 threads: every refusal is
    InvalidParam, and each member ends at 60; a lower index never overwrites a higher one."""
    setup = SDK_KINDS["volcengine"](server.host, tenant.access_key, tenant.secret_key)
    try:
        conversation_id = make_group(setup, tenant)
        for i in range(60):
            send(setup, tenant, conversation_id, MEMBERS[i % 3], text(str(i)))
        base = {"AppId": tenant.app_id, "ConversationShortId": conversation_id}
        calls = [
            ("ModifyParticipantReadIndex", {**base, "ParticipantUserId": user, "ReadIndex": index})
            for user in (ALICE, BOB)
            for index in range(1, 61)
        ]
        random.Random(4).shuffle(calls)
        answers = call_all(both_kinds(server.host, tenant), calls)
        for answer in answers:
            assert answer.ok or (answer.error or {}).get("Code") == "InvalidParam", answer
        assert any(a.ok for a in answers)
        got = ok(setup, "GetParticipantReadIndex", base)["ReadIndexes"]
        assert sorted((i["ParticipantUserId"], i["ReadIndex"]) for i in got) == [
            (ALICE, 60),
            (BOB, 60),
        ]
    finally:
        setup.close()


# =========================================================================== 3. limits


def burst(calls: Sequence[Callable[[], bool]]) -> tuple[list[bool], float]:
    """Run the calls at once from a pool of threads: what each achieved, and the seconds taken."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(lambda call: call(), calls))
    return outcomes, time.monotonic() - started


def volc_sender(clients: Clients, body: dict[str, Any]) -> Callable[[], bool]:
    def call() -> bool:
        answer = clients.get().call("SendMessage", body)
        if not answer.ok:
            assert answer.error is not None and answer.error["Code"] == "FlowLimitExceeded", answer
            assert answer.status in (None, 429), answer
        return answer.ok

    return call


def coze_sender(coze: Coze, conversation_id: int, content: str) -> Callable[[], bool]:
    def call() -> bool:
        try:
            coze.conversations.messages.create(
                conversation_id=str(conversation_id),
                role="user",
                content=content,
                content_type="text",
            )
        except CozeAPIError as error:
            assert error.code == 4008, error  # Coze's "rate limited"
            return False
        return True

    return call


def test_send_rates_per_account(database_url: str) -> None:
    """SendMessage is limited to 50 a second per account, and SendMessage and Coze's message
    create share one account-wide send rate of 50 a second. Refused sends write nothing.

    The limiter counts in a sliding window of a second: over a burst of T seconds it admits at
    most 50 + 50·T (the part of the previous second still in the window), and a fresh account's
    first 50 sends all pass."""
    tenant = new_tenant(database_url)
    other = new_tenant(database_url)
    with LiveServer(Settings(database_url=database_url)) as live, ExitStack() as stack:
        setup = SDK_KINDS["volcengine"](live.host, tenant.access_key, tenant.secret_key)
        stack.callback(setup.close)
        setup_other = SDK_KINDS["volcengine"](live.host, other.access_key, other.secret_key)
        stack.callback(setup_other.close)
        conversation_id = make_group(setup, tenant)
        shared_id = make_group(setup_other, other)
        coze = stack.enter_context(
            sync_coze(live, mint(database_url, other.account, user=str(ALICE)).token)
        )
        clients = Clients(both_kinds(live.host, tenant))
        stack.callback(clients.close)
        other_clients = Clients(both_kinds(live.host, other))
        stack.callback(other_clients.close)

        # 1. SendMessage alone: 120 at once.
        outcomes, elapsed = burst(
            [
                volc_sender(clients, send_body(tenant, conversation_id, ALICE, text(str(i))))
                for i in range(120)
            ]
        )
        sent = outcomes.count(True)
        assert elapsed < 1.4, f"the burst took {elapsed:.2f}s: too slow to tell anything"
        assert 50 <= sent <= 50 + 50 * elapsed, (sent, elapsed)
        listed = walk(setup, tenant, conversation_id, backward=False)
        assert [m["IndexInConversation"] for m in listed] == list(range(1, sent + 1))

        # 2. Another account (its own counts): 45 SendMessage and 45 Coze creates, each under
        # its own limit of 50, together over the shared send rate.
        calls = []
        for i in range(45):
            calls.append(volc_sender(other_clients, send_body(other, shared_id, BOB, text(str(i)))))
            calls.append(coze_sender(coze, shared_id, f"coze {i}"))
        outcomes, elapsed = burst(calls)
        written = outcomes.count(True)
        assert elapsed < 0.8, f"the burst took {elapsed:.2f}s: too slow to tell anything"
        assert 50 <= written <= 50 + 50 * elapsed, (written, elapsed)
        listed = walk(setup_other, other, shared_id, backward=False)
        assert [m["IndexInConversation"] for m in listed] == list(range(1, written + 1))


# =========================================================================== 4. restarts, processes


def test_racing_retries_make_one_message(server: LiveServer, tenant: Tenant) -> None:
    """16 sends with one ClientMsgId, released at once by a barrier: one message, one index."""
    setup = SDK_KINDS["volcengine"](server.host, tenant.access_key, tenant.secret_key)
    try:
        conversation_id = make_group(setup, tenant)
        body = send_body(tenant, conversation_id, ALICE, text("once"), ClientMsgId="race")
        barrier = threading.Barrier(THREADS, timeout=60)
        clients = Clients(both_kinds(server.host, tenant))

        def one(_: int) -> Answer:
            client = clients.get()
            barrier.wait()
            return client.call("SendMessage", body)

        try:
            with ThreadPoolExecutor(max_workers=THREADS) as pool:
                answers = list(pool.map(one, range(THREADS)))
        finally:
            clients.close()
        assert all(a.ok for a in answers), [a for a in answers if not a.ok][:3]
        ids = {a.result["MessageId"] for a in answers if a.result is not None}
        assert len(ids) == 1, f"{len(ids)} messages for one ClientMsgId"
        after = send(setup, tenant, conversation_id, BOB, text("after"))
        listed = walk(setup, tenant, conversation_id, backward=False)
        assert [(m["MessageId"], m["IndexInConversation"]) for m in listed] == [
            (ids.pop(), 1),
            (after, 2),
        ]
    finally:
        setup.close()


def test_client_msg_id_survives_a_restart(database_url: str) -> None:
    tenant = new_tenant(database_url)
    with LiveServer(no_limits(database_url)) as before:
        volc = SDK_KINDS["volcengine"](before.host, tenant.access_key, tenant.secret_key)
        try:
            conversation_id = make_group(volc, tenant)
            first = send(volc, tenant, conversation_id, ALICE, text("once"), ClientMsgId="r-1")
        finally:
            volc.close()
    with LiveServer(no_limits(database_url)) as after:
        core = SDK_KINDS["volcenginesdkcore"](after.host, tenant.access_key, tenant.secret_key)
        try:
            again = send(core, tenant, conversation_id, ALICE, text("once"), ClientMsgId="r-1")
            fresh = send(core, tenant, conversation_id, BOB, text("next"))
            listed = walk(core, tenant, conversation_id, backward=False)
        finally:
            core.close()
    assert again == first
    assert [(m["MessageId"], m["IndexInConversation"]) for m in listed] == [(first, 1), (fresh, 2)]


def test_two_processes_share_one_conversation(tmp_path: Path) -> None:
    """Two ``convhub serve`` on one PostgreSQL: sends through both, ClientMsgId retries through
    the other process than the first send, Coze creates through both, all at once: one message
    per ClientMsgId, every index once, no gaps."""
    count, coze_count = 300, 40
    processes: list[Served] = []
    with required_postgres() as url, ExitStack() as stack:
        tenant = new_tenant(url)  # before the start: the bootstrap only runs on an empty DB
        args = ["--database-url", url, "--no-access-log", "--rate-limits", "*=100000"]
        for name in ("one", "two"):
            (tmp_path / name).mkdir()
            processes.append(stack.enter_context(convhub_serve(args, tmp_path / name)))
        hosts = [served.host for served in processes]
        setup = SDK_KINDS["volcengine"](hosts[0], tenant.access_key, tenant.secret_key)
        stack.callback(setup.close)
        conversation_id = make_group(setup, tenant)
        token = mint(url, tenant.account, user=str(BOB)).token
        cozes = [stack.enter_context(sync_coze(served, token)) for served in processes]

        # Every message goes to one process, its retry (same ClientMsgId) to the other.
        bodies = [
            send_body(tenant, conversation_id, MEMBERS[n % 3], text(f"p{n}"), ClientMsgId=f"p-{n}")
            for n in range(count)
        ]
        pools = [
            Clients(
                [
                    lambda side=side, kind=kind: SDK_KINDS[kind](
                        hosts[side], tenant.access_key, tenant.secret_key
                    )
                    for kind in sorted(SDK_KINDS)
                ]
            )
            for side in (0, 1)
        ]
        for clients in pools:
            stack.callback(clients.close)

        def volc(n: int, side: int) -> Callable[[], tuple[int, Answer | str]]:
            return lambda: (n, pools[side].get().call("SendMessage", bodies[n]))

        def coze(i: int) -> Callable[[], tuple[int, Answer | str]]:
            def call() -> tuple[int, Answer | str]:
                made = cozes[i % 2].conversations.messages.create(
                    conversation_id=str(conversation_id),
                    role="user",
                    content=f"coze {i}",
                    content_type="text",
                )
                return -1 - i, str(made.id)

            return call

        tasks = [volc(n, n % 2) for n in range(count)]
        tasks += [volc(n, 1 - n % 2) for n in range(0, count, 2)]
        tasks += [coze(i) for i in range(coze_count)]
        random.Random(3).shuffle(tasks)
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            outcomes = list(pool.map(lambda task: task(), tasks))

        ids: dict[int, set[int]] = {}
        coze_ids: dict[int, int] = {}
        for n, outcome in outcomes:
            if isinstance(outcome, str):
                coze_ids[-1 - n] = int(outcome)
                continue
            assert outcome.ok and outcome.result is not None, outcome
            ids.setdefault(n, set()).add(outcome.result["MessageId"])
        differing = {n: got for n, got in ids.items() if len(got) != 1}
        assert not differing, f"retries through the other process got other IDs: {differing}"
        message_ids = [next(iter(ids[n])) for n in range(count)]
        assert len(set(message_ids) | set(coze_ids.values())) == count + coze_count

        other = SDK_KINDS["volcenginesdkcore"](hosts[1], tenant.access_key, tenant.secret_key)
        stack.callback(other.close)
        got = get_messages(other, tenant, conversation_id, message_ids)
        assert [m["MessageId"] for m in got] == message_ids
        for message, n in zip(got, range(count), strict=True):
            assert (message["Content"], message["ClientMsgId"]) == (text(f"p{n}"), f"p-{n}")
        total = count + coze_count
        listed = walk(setup, tenant, conversation_id, backward=False, expected_count=total)
        assert [m["IndexInConversation"] for m in listed] == list(range(1, total + 1))
        from_coze = [m for m in listed if m["MessageId"] in set(coze_ids.values())]
        assert len(from_coze) == coze_count
        assert all((m["Sender"], m["MsgType"]) == (BOB, TEXT) for m in from_coze)
    for served in processes:
        assert_stopped_cleanly(served, workers=1)
