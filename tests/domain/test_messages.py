"""Coze-side rules of the core, without HTTP, on a real database of each engine: who sees what,
permissions, sections, and message paging that visits every message exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest

from convhub.domain.authentication import Authenticator
from convhub.domain.caller import Caller
from convhub.domain.commands import CreateConversation, ModifyConversation, NewMessage
from convhub.domain.conversations import ConversationService
from convhub.domain.messages import MessageService
from convhub.domain.permissions import ALL_PERMISSIONS, Permission
from convhub.domain.policy import Policy
from convhub.errors import ConvhubError, ErrorCode
from convhub.ids import SnowflakeIds
from convhub.store.database import GroupCommitDatabase
from convhub.store.engine import create_database_engine, is_sqlite
from convhub.store.nodes import NodeLease
from tests import admin
from tests.support import new_tenant

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class Clock:
    now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Core:
    conversations: ConversationService
    messages: MessageService
    access: Authenticator
    clock: Clock
    database_url: str
    account: str
    caller: Caller

    def as_user(self, user: str, *permissions: Permission) -> Caller:
        granted = frozenset(p.value for p in permissions) if permissions else ALL_PERMISSIONS
        return replace(self.caller, user=user, permissions=granted)

    @property
    def app_id(self) -> int:
        assert self.caller.app_id is not None
        return self.caller.app_id

    def create(self, caller: Caller | None = None, **fields: Any) -> int:
        who = caller or self.caller
        command = CreateConversation(
            app_id=self.app_id, owner=who.user, other=None, type=2, **fields
        )
        return run(self.conversations.create_conversation(who, command)).conversation.id

    def say(self, conversation_id: int, text: str, caller: Caller | None = None) -> int:
        message = NewMessage(role="user", content=text)
        created = self.messages.create_message(
            caller or self.caller, self.app_id, conversation_id, message
        )
        return run(created).id


@pytest.fixture
def core(database_url: str) -> Iterator[Core]:
    tenant = new_tenant(database_url)
    engine = create_database_engine(database_url)
    db = GroupCommitDatabase(engine, read_connections=0 if is_sqlite(database_url) else 4)
    ids = SnowflakeIds(NodeLease(engine).node)
    clock = Clock()
    access = Authenticator(db=db, clock=clock, ttl=0)
    policy = Policy(db=db, clock=clock, ttl=0)
    engine_admin = create_database_engine(database_url, pool_size=1)
    try:
        token = admin.create_token(engine_admin, tenant.account, user="alice")
    finally:
        engine_admin.dispose()
    caller = run(access.token_caller(token.token))
    try:
        yield Core(
            ConversationService(db=db, ids=ids, clock=clock, policy=policy),
            MessageService(db=db, ids=ids, clock=clock, policy=policy),
            access,
            clock,
            database_url,
            tenant.account,
            caller,
        )
    finally:
        db.close()


def expect(code: ErrorCode, coroutine: Coroutine[Any, Any, Any]) -> None:
    with pytest.raises(ConvhubError) as raised:
        run(coroutine)
    assert raised.value.code is code, raised.value


def walk(core: Core, conversation_id: int, *, descending: bool, limit: int) -> list[int]:
    seen: list[int] = []
    after: int | None = None
    for _ in range(100):
        page = run(
            core.messages.list_messages(
                core.caller,
                core.app_id,
                conversation_id,
                descending=descending,
                after_id=after,
                limit=limit,
            )
        )
        seen += [m.id for m in page.messages]
        if not page.has_more:
            return seen
        after = int(page.last_id)
    raise AssertionError("paging never ended")


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
def test_paging_after_last_id_visits_every_message_once_in_both_orders(
    core: Core, limit: int
) -> None:
    conversation = core.create()
    sent = [core.say(conversation, f"m{i}") for i in range(7)]
    assert walk(core, conversation, descending=False, limit=limit) == sent
    assert walk(core, conversation, descending=True, limit=limit) == sent[::-1]


def test_before_first_id_walks_back_to_the_start(core: Core) -> None:
    conversation = core.create()
    sent = [core.say(conversation, f"m{i}") for i in range(7)]
    for descending, order in ((True, sent[::-1]), (False, sent)):
        last = run(
            core.messages.list_messages(
                core.caller,
                core.app_id,
                conversation,
                descending=descending,
                after_id=order[4],
                limit=2,
            )
        )
        assert [m.id for m in last.messages] == order[5:7]
        collected = [m.id for m in last.messages]
        before = int(last.first_id)
        while True:
            page = run(
                core.messages.list_messages(
                    core.caller,
                    core.app_id,
                    conversation,
                    descending=descending,
                    before_id=before,
                    limit=2,
                )
            )
            collected = [m.id for m in page.messages] + collected
            if not page.has_more:
                break
            before = int(page.first_id)
        assert collected == order


def test_an_empty_page_has_empty_ids(core: Core) -> None:
    page = run(core.messages.list_messages(core.caller, core.app_id, core.create()))
    assert (page.messages, page.first_id, page.last_id, page.has_more) == ([], "", "", False)


def test_another_user_sees_nothing_of_the_conversation(core: Core) -> None:
    conversation = core.create(name="mine")
    message = core.say(conversation, "hello")
    bob = core.as_user("bob")
    app = core.app_id
    missing = ErrorCode.CONVERSATION_NOT_FOUND
    rename = ModifyConversation(app_id=app, conversation_id=conversation, name="x")
    expect(missing, core.conversations.get_conversation(bob, app, conversation))
    expect(missing, core.conversations.modify_conversation(bob, rename))
    expect(missing, core.conversations.destroy_conversation(bob, app, conversation, owner="bob"))
    expect(missing, core.conversations.clear_conversation(bob, app, conversation))
    expect(missing, core.messages.list_messages(bob, app, conversation))
    expect(missing, core.messages.get_message(bob, app, conversation, message))
    expect(missing, core.messages.create_message(bob, app, conversation, NewMessage("user", "x")))
    listed, _ = run(
        core.conversations.list_conversations(bob, app, bot_id="", page_num=1, page_size=50)
    )
    assert listed == []
    assert run(core.conversations.batch_get_conversations(bob, app, (conversation,))) == []
    assert run(core.conversations.get_conversation(core.caller, app, conversation)).name == "mine"


def test_a_token_cannot_act_in_another_app(core: Core, database_url: str) -> None:
    engine = create_database_engine(database_url, pool_size=1)
    try:
        other_app = admin.create_app(engine, core.account)
    finally:
        engine.dispose()
    expect(
        ErrorCode.APP_OF_OTHER_ACCOUNT,
        core.conversations.create_conversation(
            core.caller, CreateConversation(app_id=other_app, owner="alice", other=None, type=2)
        ),
    )


def test_clear_starts_a_new_section_and_keeps_the_messages(core: Core) -> None:
    conversation = core.create()
    app = core.app_id
    first = run(core.conversations.get_conversation(core.caller, app, conversation)).section_id
    old = core.say(conversation, "before")
    section = run(core.conversations.clear_conversation(core.caller, app, conversation))
    assert section != first
    after = run(core.conversations.get_conversation(core.caller, app, conversation))
    assert after.section_id == section
    new = core.say(conversation, "after")
    messages = run(core.messages.list_messages(core.caller, app, conversation, descending=False))
    assert [(m.id, m.section_id) for m in messages.messages] == [(old, first), (new, section)]


def test_delete_hides_the_conversation_from_both_dialects(core: Core) -> None:
    conversation = core.create()
    app = core.app_id
    run(core.conversations.destroy_conversation(core.caller, app, conversation, owner="alice"))
    expect(
        ErrorCode.CONVERSATION_NOT_FOUND,
        core.conversations.get_conversation(core.caller, app, conversation),
    )
    as_key = Caller.access_key(core.caller.account_id)
    assert run(core.conversations.batch_get_conversations(as_key, app, (conversation,))) == []


def test_meta_data_limits(core: Core) -> None:
    base = CreateConversation(app_id=core.app_id, owner="alice", other=None, type=2)

    def create(meta: dict[str, str]) -> Coroutine[Any, Any, Any]:
        command = replace(base, meta_data=meta)
        return core.conversations.create_conversation(core.caller, command)

    over = ErrorCode.META_DATA_OVER_LIMIT
    expect(over, create({f"k{i}": "v" for i in range(17)}))
    expect(over, create({"k" * 65: "v"}))
    expect(over, create({"k": "v" * 513}))
    expect(over, create({"k": ""}))
    made = run(create({f"k{i}": "v" * 512 for i in range(16)}))
    assert len(made.conversation.ext) == 16


def test_list_conversations_pages_by_bot_and_connector(core: Core) -> None:
    made = [core.create(bot_id="b1", connector_id="1024") for _ in range(5)]
    core.create(bot_id="b2", connector_id="1024")
    core.create(bot_id="b1", connector_id="999")
    seen: list[int] = []
    for page_num in range(1, 10):
        page, more = run(
            core.conversations.list_conversations(
                core.caller, core.app_id, bot_id="b1", page_num=page_num, page_size=2
            )
        )
        seen += [c.id for c in page]
        if not more:
            break
    assert seen == made[::-1]


def test_tokens_revoked_expired_or_unknown_are_refused(core: Core) -> None:
    engine = create_database_engine(core.database_url, pool_size=1)
    try:
        revoked = admin.create_token(engine, core.account, user="alice")
        admin.revoke_token(engine, revoked.id)
        expiring = admin.create_token(engine, core.account, user="alice", expires_in=60)
    finally:
        engine.dispose()
    expect(ErrorCode.INVALID_TOKEN, core.access.token_caller(revoked.token))
    expect(ErrorCode.INVALID_TOKEN, core.access.token_caller("pat_unknown"))
    assert run(core.access.token_caller(expiring.token)).user == "alice"
    core.clock.now = 10**10  # far beyond its expiry
    expect(ErrorCode.INVALID_TOKEN, core.access.token_caller(expiring.token))
