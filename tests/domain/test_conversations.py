"""The conversation core without HTTP, on a real database of each engine.

The core is built as ``convhub.server`` builds it (engine, group-commit database, snowflake IDs on a
leased node, access control, service), with an injected clock so times are exact.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select

from convhub.domain import rules
from convhub.domain.caller import Caller
from convhub.domain.commands import (
    CreateConversation,
    ModifyConversation,
)
from convhub.domain.conversations import (
    ConversationService,
    CreatedConversation,
    idempotency_key,
)
from convhub.domain.limits import ProductLimits
from convhub.domain.models import (
    Conversation,
    ConversationStatus,
    ConversationType,
    EntityStatus,
    Participant,
    ParticipantStatus,
    Role,
)
from convhub.domain.policy import Policy
from convhub.domain.ports import UnitOfWork
from convhub.errors import ConvhubError, ErrorCode
from convhub.ids import SnowflakeIds
from convhub.store.database import CHECKS_AT_ONCE_BATCHES, GroupCommitDatabase
from convhub.store.driver import InList
from convhub.store.engine import create_database_engine, is_sqlite
from convhub.store.nodes import NodeLease
from convhub.store.repositories import participants as participants_store
from convhub.store.session import Session
from convhub.store.tables import accounts, conversations, participants
from tests import admin
from tests.support import Tenant, new_tenant, required_postgres

T = TypeVar("T")
START = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Core:
    service: ConversationService
    db: GroupCommitDatabase
    ids: SnowflakeIds
    clock: FakeClock
    policy: Policy
    engine: Engine  # a separate engine, to read tables behind the core's back
    tenant: Tenant
    account_id: int

    @property
    def app_id(self) -> int:
        return self.tenant.app_id

    @property
    def caller(self) -> Caller:
        return Caller.access_key(self.account_id)

    def create_command(self, **fields: Any) -> CreateConversation:
        values: dict[str, Any] = {
            "app_id": self.app_id,
            "owner": "u1",
            "other": None,
            "type": ConversationType.GROUP,
        }
        values.update(fields)
        return CreateConversation(**values)

    def create(self, **fields: Any) -> CreatedConversation:
        return run(self.service.create_conversation(self.caller, self.create_command(**fields)))

    def modify(self, conversation_id: int, **fields: Any) -> None:
        command = ModifyConversation(
            app_id=self.app_id,
            conversation_id=conversation_id,
            **fields,
        )
        run(self.service.modify_conversation(self.caller, command))

    def batch_get(self, *ids: int, app_id: int | None = None) -> list[Conversation]:
        app = self.app_id if app_id is None else app_id
        return run(self.service.batch_get_conversations(self.caller, app, ids))

    def get(self, conversation_id: int) -> Conversation:
        (found,) = self.batch_get(conversation_id)
        return found

    def write(self, work: Callable[[UnitOfWork], T]) -> T:
        return run(self.db.write(work))

    def roles(self, conversation_id: int) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(
                select(participants.c.user_id, participants.c.role).where(
                    participants.c.conversation_id == conversation_id
                )
            )
            return {row.user_id: row.role for row in rows}

    def count(self, app_id: int | None = None) -> int:
        with self._read() as conn:
            statement = (
                select(sa.func.count())
                .select_from(conversations)
                .where(conversations.c.app_id == (self.app_id if app_id is None else app_id))
            )
            return int(conn.execute(statement).scalar_one())

    def ids_in_table(self) -> set[int]:
        with self._read() as conn:
            statement = select(conversations.c.id).where(conversations.c.app_id == self.app_id)
            return {row.id for row in conn.execute(statement)}

    def _read(self) -> sa.Connection:
        return self.engine.connect().execution_options(convhub_readonly=True)


def run(awaitable: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await awaitable

    return asyncio.run(wrapper())


@pytest.fixture
def core(database_url: str) -> Iterator[Core]:
    tenant = new_tenant(database_url)
    engine = create_database_engine(database_url, pool_size=4)
    reader = create_database_engine(database_url, pool_size=2)
    with reader.connect() as conn:
        account_id = conn.execute(
            select(accounts.c.id).where(accounts.c.name == tenant.account)
        ).scalar_one()
    clock = FakeClock()
    ids = SnowflakeIds(NodeLease(engine).node)
    db = GroupCommitDatabase(engine, read_connections=0 if is_sqlite(database_url) else 2)
    policy = Policy(db=db, clock=clock)
    service = ConversationService(db=db, ids=ids, clock=clock, policy=policy)
    try:
        yield Core(service, db, ids, clock, policy, reader, tenant, int(account_id))
    finally:
        db.close()
        reader.dispose()


def raises(code: ErrorCode, call: Callable[[], object]) -> ConvhubError:
    with pytest.raises(ConvhubError) as caught:
        call()
    assert caught.value.code is code, caught.value
    return caught.value


def plain_command(**fields: Any) -> CreateConversation:
    values: dict[str, Any] = {
        "app_id": 1,
        "owner": "10001",
        "other": "10002",
        "type": ConversationType.SINGLE,
    }
    values.update(fields)
    return CreateConversation(**values)


# --- idempotency_key -----------------------------------------------------------------------------


def test_single_chat_key_ignores_the_order_of_the_pair() -> None:
    forward = idempotency_key(plain_command(owner="10001", other="10002"))
    backward = idempotency_key(plain_command(owner="10002", other="10001"))
    assert forward is not None
    assert forward == backward


def test_single_chat_key_depends_on_the_pair() -> None:
    base = idempotency_key(plain_command(owner="10001", other="10002"))
    assert idempotency_key(plain_command(owner="10001", other="10003")) != base
    assert idempotency_key(plain_command(owner="1000", other="110002")) != base


def test_single_chat_key_cannot_be_forged_by_separators_in_user_ids() -> None:
    # Joined naively, both pairs would read "a:b:c".
    first = idempotency_key(plain_command(owner="a:b", other="c"))
    second = idempotency_key(plain_command(owner="a", other="b:c"))
    assert first is not None and second is not None
    assert first != second


def test_idempotent_id_cannot_collide_with_a_derived_key() -> None:
    derived = idempotency_key(plain_command())
    assert derived is not None
    forged = idempotency_key(plain_command(type=ConversationType.GROUP, idempotent_id=derived))
    assert forged is not None
    assert forged != derived


def test_idempotent_id_wins_over_the_pair() -> None:
    keyed = idempotency_key(plain_command(idempotent_id="k"))
    assert keyed != idempotency_key(plain_command())
    assert keyed == idempotency_key(plain_command(owner="7", other="8", idempotent_id="k"))
    assert keyed == idempotency_key(plain_command(type=ConversationType.GROUP, idempotent_id="k"))
    assert keyed != idempotency_key(plain_command(idempotent_id="k2"))


@pytest.mark.parametrize("kind", [ConversationType.GROUP, ConversationType.LIVE_GROUP])
def test_groups_without_idempotent_id_have_no_key(kind: ConversationType) -> None:
    assert idempotency_key(plain_command(type=kind)) is None
    assert idempotency_key(plain_command(type=kind, other=None)) is None
    assert idempotency_key(plain_command(type=kind, idempotent_id="g")) is not None


def test_prefix_separation_holds_in_the_database(core: Core) -> None:
    pair = core.create(type=ConversationType.SINGLE, owner="u1", other="u2")
    derived = idempotency_key(core.create_command(type=ConversationType.SINGLE, other="u2"))
    assert derived is not None
    forged = core.create(idempotent_id=derived)
    assert forged.exist is False
    assert forged.conversation.id != pair.conversation.id
    again = core.create(type=ConversationType.SINGLE, owner="u2", other="u1")
    assert again.exist is True
    assert again.conversation.id == pair.conversation.id


# --- creation ------------------------------------------------------------------------------------


def test_create_uses_the_injected_clock_and_fresh_ids(core: Core) -> None:
    created = core.create(name="n", ext={"k": "v"})
    conversation = created.conversation
    assert created.exist is False
    assert conversation.create_time == int(START)
    assert conversation.modify_time == int(START)
    assert conversation.creator == conversation.owner == "u1"
    assert conversation.status is ConversationStatus.NORMAL
    assert core.get(conversation.id) == conversation  # what was answered is what was stored
    assert core.create().conversation.id > conversation.id


def test_participants_of_a_single_chat_are_two_members(core: Core) -> None:
    created = core.create(type=ConversationType.SINGLE, owner="u1", other="u2")
    assert created.conversation.member_count == 2
    assert core.roles(created.conversation.id) == {"u1": Role.MEMBER, "u2": Role.MEMBER}


@pytest.mark.parametrize("kind", [ConversationType.GROUP, ConversationType.LIVE_GROUP])
def test_participants_of_a_group_are_its_owner(core: Core, kind: ConversationType) -> None:
    created = core.create(type=kind, other="u2")  # other is ignored outside single chats
    assert created.conversation.other is None
    assert created.conversation.member_count == 1
    assert core.roles(created.conversation.id) == {"u1": Role.OWNER}


def test_repeat_keeps_the_stored_conversation_and_adds_no_members(core: Core) -> None:
    first = core.create(idempotent_id="k", name="first", ext={"a": "1"})
    core.clock.now += 100
    again = core.create(idempotent_id="k", name="second", ext={"b": "2"}, owner="u9")
    assert again.exist is True
    assert again.conversation == first.conversation
    assert core.roles(first.conversation.id) == {"u1": Role.OWNER}
    assert core.count() == 1


def test_concurrent_creates_of_one_single_chat_make_one_conversation(core: Core) -> None:
    async def many() -> list[CreatedConversation]:
        commands = [
            core.create_command(
                type=ConversationType.SINGLE,
                owner="u1" if i % 2 else "u2",
                other="u2" if i % 2 else "u1",
            )
            for i in range(20)
        ]
        return await asyncio.gather(
            *(core.service.create_conversation(core.caller, c) for c in commands)
        )

    results = run(many())
    assert len({r.conversation.id for r in results}) == 1
    assert sum(not r.exist for r in results) == 1
    assert core.count() == 1
    assert core.roles(results[0].conversation.id) == {"u1": Role.MEMBER, "u2": Role.MEMBER}


INVALID_CREATES: list[tuple[dict[str, Any], ErrorCode]] = [
    ({"type": 3}, ErrorCode.INVALID_PARAM),
    ({"type": 0}, ErrorCode.INVALID_PARAM),
    ({"owner": None}, ErrorCode.INVALID_PARAM),
    ({"type": ConversationType.SINGLE, "other": None}, ErrorCode.SINGLE_NEEDS_OTHER_USER),
    ({"type": ConversationType.SINGLE, "other": "u1"}, ErrorCode.INVALID_PARAM),
    ({"inbox_type": -1}, ErrorCode.INVALID_PARAM),
    ({"name": "n" * (rules.MAX_NAME + 1)}, ErrorCode.INVALID_PARAM),
    ({"avatar_url": "a" * (rules.MAX_AVATAR_URL + 1)}, ErrorCode.INVALID_PARAM),
    ({"description": "d" * (rules.MAX_DESCRIPTION + 1)}, ErrorCode.INVALID_PARAM),
    ({"notice": "n" * (rules.MAX_NOTICE + 1)}, ErrorCode.INVALID_PARAM),
    ({"idempotent_id": "i" * (rules.MAX_IDEMPOTENT_ID + 1)}, ErrorCode.INVALID_PARAM),
    ({"ext": {str(i): "v" for i in range(rules.MAX_EXT_PAIRS + 1)}}, ErrorCode.INVALID_PARAM),
    ({"ext": {"": "v"}}, ErrorCode.INVALID_PARAM),
    ({"ext": {"k" * (rules.MAX_EXT_KEY + 1): "v"}}, ErrorCode.INVALID_PARAM),
    ({"ext": {"k": "v" * (rules.MAX_EXT_VALUE + 1)}}, ErrorCode.INVALID_PARAM),
    ({"name": "a\x00b"}, ErrorCode.INVALID_PARAM),
    ({"idempotent_id": "\x00"}, ErrorCode.INVALID_PARAM),
    ({"app_id": 2_147_000_001}, ErrorCode.APP_NOT_FOUND),
]


@pytest.mark.parametrize(
    ("fields", "code"), INVALID_CREATES, ids=[f"{f}"[:50] for f, _ in INVALID_CREATES]
)
def test_invalid_create_is_refused_and_writes_nothing(
    core: Core, fields: dict[str, Any], code: ErrorCode
) -> None:
    raises(code, lambda: core.create(**fields))
    assert core.count() == 0


def test_limits_are_inclusive(core: Core) -> None:
    created = core.create(
        name="n" * rules.MAX_NAME,
        avatar_url="a" * rules.MAX_AVATAR_URL,
        description="d" * rules.MAX_DESCRIPTION,
        notice="n" * rules.MAX_NOTICE,
        idempotent_id="i" * rules.MAX_IDEMPOTENT_ID,
        ext={f"{i:0{rules.MAX_EXT_KEY}d}": "v" * rules.MAX_EXT_VALUE for i in range(64)},
    )
    assert created.exist is False
    assert core.get(created.conversation.id).ext == created.conversation.ext


def test_app_of_another_account_is_refused(core: Core, database_url: str) -> None:
    stranger = new_tenant(database_url)
    raises(ErrorCode.APP_OF_OTHER_ACCOUNT, lambda: core.create(app_id=stranger.app_id))
    assert core.count(stranger.app_id) == 0


def test_access_cache_lasts_its_ttl_on_the_injected_clock(core: Core) -> None:
    core.create()  # caches the app
    admin.set_app_status(core.engine, core.app_id, EntityStatus.DISABLED)
    core.clock.now += 4.9
    assert core.create().exist is False  # still cached: within the 5 s TTL
    core.clock.now += 0.2
    raises(ErrorCode.APP_DISABLED, lambda: core.create())
    assert core.count() == 2


def test_an_unknown_app_is_cached_for_the_ttl_then_looked_up_again(core: Core) -> None:
    app_id = 2_000_000_000 + core.app_id
    reads = 0
    real_read = core.db.read

    async def counting_read(work: Any) -> Any:
        nonlocal reads
        reads += 1
        return await real_read(work)

    core.db.read = counting_read  # type: ignore[method-assign]
    for _ in range(5):  # a flood of calls for a made-up app costs one read per TTL
        raises(ErrorCode.APP_NOT_FOUND, lambda: core.create(app_id=app_id))
    assert reads == 1
    admin.create_app(core.engine, core.tenant.account, app_id=app_id)
    raises(ErrorCode.APP_NOT_FOUND, lambda: core.create(app_id=app_id))  # still cached
    core.clock.now += 5.1  # the TTL (5 s) has passed
    assert core.create(app_id=app_id).exist is False


# --- modification --------------------------------------------------------------------------------


def test_modify_changes_only_the_given_fields(core: Core) -> None:
    conversation = core.create(
        name="n", avatar_url="a", description="d", notice="old", ext={"k": "v"}
    ).conversation
    core.clock.now = START + 50
    core.modify(conversation.id, notice="new")
    stored = core.get(conversation.id)
    assert stored.notice == "new"
    assert (stored.name, stored.avatar_url, stored.description) == ("n", "a", "d")
    assert stored.ext == {"k": "v"}
    assert stored.create_time == int(START)
    assert stored.modify_time == int(START) + 50


def test_modify_empty_string_clears_and_ext_merges(core: Core) -> None:
    conversation = core.create(name="n", ext={"a": "1", "b": "2"}).conversation
    core.modify(conversation.id, name="", ext={"b": "3", "c": "4"})
    stored = core.get(conversation.id)
    assert stored.name == ""
    assert stored.ext == {"a": "1", "b": "3", "c": "4"}


def test_modify_without_a_change_keeps_modify_time(core: Core) -> None:
    conversation = core.create(name="n", ext={"a": "1"}).conversation
    core.clock.now = START + 10
    core.modify(conversation.id, name="n", ext={"a": "1"}, owner="u1")
    assert core.get(conversation.id).modify_time == int(START)


def test_modify_time_never_goes_backwards(core: Core) -> None:
    conversation = core.create().conversation
    core.clock.now = START + 100
    core.modify(conversation.id, name="later")
    core.clock.now = START - 1000  # the clock stepped back
    core.modify(conversation.id, name="even later")
    stored = core.get(conversation.id)
    assert stored.name == "even later"
    assert stored.modify_time == int(START) + 100


def test_ext_merge_over_the_limit_is_refused_and_changes_nothing(core: Core) -> None:
    full = {str(i): "v" for i in range(rules.MAX_EXT_PAIRS)}
    conversation = core.create(ext=full).conversation
    raises(
        ErrorCode.INVALID_PARAM, lambda: core.modify(conversation.id, name="x", ext={"new": "v"})
    )
    stored = core.get(conversation.id)
    assert stored.ext == full
    assert stored.name == ""
    core.modify(conversation.id, ext={"0": "replaced"})  # replacing a key keeps the count
    assert core.get(conversation.id).ext["0"] == "replaced"


def test_modify_validates_lengths(core: Core) -> None:
    conversation = core.create(name="n").conversation
    too_long = "x" * (rules.MAX_NOTICE + 1)
    raises(ErrorCode.INVALID_PARAM, lambda: core.modify(conversation.id, name="y", notice=too_long))
    assert core.get(conversation.id).name == "n"


def test_modify_of_unknown_or_foreign_conversation_is_not_found(core: Core) -> None:
    conversation = core.create(name="mine").conversation
    other_app = admin.create_app(core.engine, core.tenant.account)
    raises(ErrorCode.CONVERSATION_NOT_FOUND, lambda: core.modify(conversation.id + 1, name="x"))
    command = ModifyConversation(app_id=other_app, conversation_id=conversation.id, name="x")
    raises(
        ErrorCode.CONVERSATION_NOT_FOUND,
        lambda: run(core.service.modify_conversation(core.caller, command)),
    )
    assert core.get(conversation.id).name == "mine"


def _add_member(core: Core, conversation_id: int, user: str, status: ParticipantStatus) -> None:
    member = Participant(conversation_id, user, Role.MEMBER, "u1", int(START), status)
    core.write(lambda uow: uow.participants.add_many([member]))


def test_owner_transfer_swaps_roles(core: Core) -> None:
    conversation = core.create().conversation
    _add_member(core, conversation.id, "u2", ParticipantStatus.NORMAL)
    _add_member(core, conversation.id, "u3", ParticipantStatus.NORMAL)
    core.clock.now = START + 5
    core.modify(conversation.id, owner="u2")
    assert core.roles(conversation.id) == {"u1": Role.MEMBER, "u2": Role.OWNER, "u3": Role.MEMBER}
    stored = core.get(conversation.id)
    assert stored.owner == "u2"
    assert stored.creator == "u1"
    assert stored.modify_time == int(START) + 5
    core.modify(conversation.id, owner="u1")
    assert core.roles(conversation.id) == {"u1": Role.OWNER, "u2": Role.MEMBER, "u3": Role.MEMBER}
    assert core.get(conversation.id).owner == "u1"


@pytest.mark.parametrize("status", [ParticipantStatus.EXITED, None])
def test_owner_transfer_needs_a_present_member(
    core: Core, status: ParticipantStatus | None
) -> None:
    conversation = core.create(name="n").conversation
    if status is not None:
        _add_member(core, conversation.id, "u2", status)
    raises(
        ErrorCode.PARTICIPANT_NOT_IN_CONVERSATION,
        lambda: core.modify(conversation.id, owner="u2", name="changed"),
    )
    stored = core.get(conversation.id)
    assert (stored.owner, stored.name) == ("u1", "n")
    assert core.roles(conversation.id)["u1"] == Role.OWNER


def test_owner_transfer_on_a_single_chat_is_refused(core: Core) -> None:
    conversation = core.create(type=ConversationType.SINGLE, other="u2").conversation
    raises(
        ErrorCode.SINGLE_CONVERSATION_NOT_SUPPORTED,
        lambda: core.modify(conversation.id, owner="u2"),
    )
    core.modify(conversation.id, owner="u1", name="pair")  # no transfer: fine
    stored = core.get(conversation.id)
    assert (stored.owner, stored.name) == ("u1", "pair")
    assert core.roles(conversation.id) == {"u1": Role.MEMBER, "u2": Role.MEMBER}


def test_dissolved_conversation_is_gone(core: Core) -> None:
    live = core.create().conversation
    dead = core.create().conversation
    dissolved = replace(dead, status=ConversationStatus.DISSOLVED)
    core.write(lambda uow: uow.conversations.update(dissolved, ("status",)))
    assert [c.id for c in core.batch_get(dead.id, live.id)] == [live.id]
    raises(ErrorCode.CONVERSATION_NOT_FOUND, lambda: core.modify(dead.id, name="x"))


def test_a_dissolved_group_gives_its_idempotent_id_up_and_stays_stored(core: Core) -> None:
    first = core.create(idempotent_id="weekly", name="first").conversation
    run(core.service.destroy_conversation(core.caller, core.app_id, first.id, owner="u1"))
    second = core.create(idempotent_id="weekly", name="second")
    assert second.exist is False and second.conversation.id != first.id
    assert core.create(idempotent_id="weekly").conversation.id == second.conversation.id
    assert core.ids_in_table() >= {first.id, second.conversation.id}  # nothing deleted
    assert [c.id for c in core.batch_get(first.id, second.conversation.id)] == [
        second.conversation.id
    ]


def test_a_dissolved_single_chat_no_longer_holds_its_pair(core: Core) -> None:
    # Single chats cannot be dissolved through either API; data from before this rule can be.
    old = core.create(type=ConversationType.SINGLE, other="u2").conversation
    core.write(lambda uow: uow.conversations.dissolve(old))
    new = core.create(type=ConversationType.SINGLE, owner="u2", other="u1")
    assert new.exist is False and new.conversation.id != old.id
    core.modify(new.conversation.id, name="talking again")
    assert core.get(new.conversation.id).name == "talking again"


def test_only_the_owner_dissolves_and_never_a_single_chat(core: Core) -> None:
    group = core.create().conversation
    single = core.create(type=ConversationType.SINGLE, other="u2").conversation
    destroy = core.service.destroy_conversation
    raises(
        ErrorCode.ONLY_OWNER, lambda: run(destroy(core.caller, core.app_id, group.id, owner="x"))
    )
    raises(
        ErrorCode.SINGLE_CONVERSATION_NOT_SUPPORTED,
        lambda: run(destroy(core.caller, core.app_id, single.id, owner="u1")),
    )
    assert [c.id for c in core.batch_get(group.id, single.id)] == [group.id, single.id]


# --- batch get -----------------------------------------------------------------------------------


def test_batch_get_order_duplicates_and_strangers(core: Core) -> None:
    a, b, c = (core.create(name=n).conversation.id for n in "abc")
    other_app = admin.create_app(core.engine, core.tenant.account)
    foreign = run(
        core.service.create_conversation(core.caller, core.create_command(app_id=other_app))
    ).conversation.id
    found = core.batch_get(c, a, 12345, c, foreign, b, a)
    assert [x.id for x in found] == [c, a, b]
    assert [x.name for x in found] == ["c", "a", "b"]


@pytest.mark.parametrize(
    ("ids", "code"),
    [
        ((), ErrorCode.INVALID_PARAM),
        (tuple(range(1, rules.MAX_BATCH_GET + 2)), ErrorCode.INVALID_PARAM),
        ((1, 0), ErrorCode.INVALID_CONVERSATION_ID_ELEMENT),
        ((1, -5), ErrorCode.INVALID_CONVERSATION_ID_ELEMENT),
    ],
    ids=["empty", "over-cap", "zero", "negative"],
)
def test_batch_get_refuses_bad_id_lists(core: Core, ids: tuple[int, ...], code: ErrorCode) -> None:
    raises(code, lambda: core.batch_get(*ids))


def test_batch_get_accepts_the_cap(core: Core) -> None:
    known = core.create().conversation.id
    ids = (known, *range(1, rules.MAX_BATCH_GET))
    assert [c.id for c in core.batch_get(*ids)] == [known]


# --- group commit ---------------------------------------------------------------------------------


class Boom(Exception):
    pass


def _row(core: Core, conversation_id: int) -> Conversation:
    return Conversation(
        id=conversation_id,
        app_id=core.app_id,
        inbox_type=0,
        type=ConversationType.GROUP,
        owner="u1",
        creator="u1",
        other=None,
        create_time=int(START),
        modify_time=int(START),
        member_count=1,
    )


@dataclass
class Batch:
    """Units of work queued together while the writer is held, so that they form one batch."""

    core: Core
    ids: dict[str, int]

    @classmethod
    def of(cls, core: Core, *names: str) -> Batch:
        return cls(core, {n: core.ids.next_id() for n in names})

    def insert(
        self, name: str, key: str | None = None, *, fail: bool = False
    ) -> Callable[[UnitOfWork], int]:
        """Insert conversation ``name`` and its owner; raise afterwards if ``fail``."""

        def work(uow: UnitOfWork) -> int:
            assert uow.conversations.add(_row(self.core, self.ids[name]), key)
            member = Participant(self.ids[name], "u1", Role.OWNER, "u1", int(START))
            uow.participants.add_many([member])
            if fail:
                raise Boom(name)
            return self.ids[name]

        return work

    def clash(self, name: str, with_: str) -> Callable[[UnitOfWork], int]:
        """Insert a row with the primary key of ``with_``: the database refuses it."""

        def work(uow: UnitOfWork) -> int:
            uow.conversations.add(_row(self.core, self.ids[with_]), None)
            uow.conversations.get(self.ids[with_])  # meets the clash
            return self.ids[name]

        return work

    def run(self, units: list[Callable[[UnitOfWork], int]]) -> list[object]:
        """Queue all units while the writer is held, so they form one batch; their outcomes."""
        started, release = threading.Event(), threading.Event()

        def blocker(uow: UnitOfWork) -> int:
            started.set()
            assert release.wait(30)
            return 0

        db = self.core.db

        async def scenario() -> list[object]:
            first = asyncio.ensure_future(db.write(blocker))
            assert await asyncio.to_thread(started.wait, 30)  # the writer runs the blocker
            tasks = [asyncio.ensure_future(db.write(unit)) for unit in units]
            await asyncio.sleep(0)  # one turn of the loop: every task has written its unit …
            await asyncio.sleep(0)  # … and at the turn's end they went to the writer's queue
            # All of them wait in the queue, and the writer takes whatever is queued at once.
            assert db._queue.qsize() == len(units)
            release.set()
            # A bound, so that a dead writer fails the test instead of hanging it.
            return await asyncio.wait_for(
                asyncio.gather(first, *tasks, return_exceptions=True), timeout=10
            )

        outcomes = run(scenario())
        assert outcomes[0] == 0
        return outcomes[1:]

    def committed(self) -> set[str]:
        stored = self.core.ids_in_table()
        return {name for name, i in self.ids.items() if i in stored}


def test_units_queued_together_commit_in_one_batch(core: Core) -> None:
    batch = Batch.of(core, "a", "b", "c")
    outcomes = batch.run([batch.insert("a"), batch.insert("b", key="k"), batch.insert("c")])
    assert outcomes == [batch.ids["a"], batch.ids["b"], batch.ids["c"]]
    assert batch.committed() == {"a", "b", "c"}
    for name in ("a", "b", "c"):
        assert core.roles(batch.ids[name]) == {"u1": Role.OWNER}


def test_unit_raising_in_a_batch_rolls_back_alone(core: Core) -> None:
    batch = Batch.of(core, "a", "raise", "b", "c")
    outcomes = batch.run(
        [
            batch.insert("a"),
            batch.insert("raise", fail=True),  # inserted, then raised: must leave nothing
            batch.insert("b", key="k"),
            batch.insert("c"),
        ]
    )
    assert isinstance(outcomes[1], Boom)
    assert [outcomes[0], outcomes[2], outcomes[3]] == [batch.ids[n] for n in ("a", "b", "c")]
    assert batch.committed() == {"a", "b", "c"}
    assert core.roles(batch.ids["raise"]) == {}
    assert core.create().exist is False  # the writer is still serving


def test_unit_refused_by_the_database_in_a_batch_fails_alone(core: Core) -> None:
    batch = Batch.of(core, "a", "clash", "b")
    outcomes = batch.run([batch.insert("a"), batch.clash("clash", with_="a"), batch.insert("b")])
    assert outcomes[0] == batch.ids["a"]
    assert isinstance(outcomes[1], sa.exc.IntegrityError)
    assert outcomes[2] == batch.ids["b"]
    assert batch.committed() == {"a", "b"}
    assert core.create().exist is False  # the writer is still serving


def test_unit_whose_held_back_insert_fails_at_flush_fails_alone(core: Core) -> None:
    existing = core.create().conversation.id
    batch = Batch.of(core, "a", "dup", "b")

    def duplicate(uow: UnitOfWork) -> int:
        # Nothing runs after this insert inside the unit: it can only fail when written.
        uow.conversations.add(_row(core, existing), None)
        return batch.ids["dup"]

    outcomes = batch.run([batch.insert("a"), duplicate, batch.insert("b")])
    assert outcomes[0] == batch.ids["a"]
    assert isinstance(outcomes[1], sa.exc.IntegrityError)
    assert outcomes[2] == batch.ids["b"]
    assert batch.committed() == {"a", "b"}
    assert core.create().exist is False  # the writer is still serving


def test_failing_create_among_concurrent_creates_fails_alone(core: Core) -> None:
    async def mixed() -> list[object]:
        commands = [
            core.create_command(name="ok-1"),
            core.create_command(type=ConversationType.SINGLE, other="u2"),
            core.create_command(app_id=2_147_000_002),  # unknown app: refused
            core.create_command(idempotent_id="k", name="ok-2"),
            core.create_command(type=ConversationType.SINGLE, other="u1"),  # oneself: refused
        ]
        return await asyncio.gather(
            *(core.service.create_conversation(core.caller, c) for c in commands),
            return_exceptions=True,
        )

    ok1, single, unknown, keyed, oneself = run(mixed())
    assert isinstance(unknown, ConvhubError) and unknown.code is ErrorCode.APP_NOT_FOUND
    assert isinstance(oneself, ConvhubError) and oneself.code is ErrorCode.INVALID_PARAM
    created = [ok1, single, keyed]
    assert all(isinstance(r, CreatedConversation) and not r.exist for r in created)
    assert core.ids_in_table() == {
        r.conversation.id for r in created if isinstance(r, CreatedConversation)
    }


def _creates_in_one_batch(
    core: Core, service: ConversationService, owners: list[str]
) -> list[object]:
    """A group create by each of ``owners``, queued in this order while the writer is held, so
    that the writer takes them all at once as one batch; their outcomes (errors included)."""
    started, release = threading.Event(), threading.Event()

    def blocker(uow: UnitOfWork) -> int:
        started.set()
        assert release.wait(30)
        return 0

    async def scenario() -> list[object]:
        first = asyncio.ensure_future(core.db.write(blocker))
        assert await asyncio.to_thread(started.wait, 30)  # the writer waits in the blocker
        tasks = []
        for owner in owners:
            command = core.create_command(owner=owner)
            tasks.append(asyncio.ensure_future(service.create_conversation(core.caller, command)))
            while core.db.queued < len(tasks):  # queued in this order
                await asyncio.sleep(0.001)
        release.set()  # the writer takes all of them at once: one batch
        return await asyncio.wait_for(asyncio.gather(first, *tasks, return_exceptions=True), 10)

    return run(scenario())[1:]


def test_group_creates_past_the_limit_in_one_batch_fail_alone(core: Core) -> None:
    """The writer does not wait for a group create's count of its owner's groups (PostgreSQL:
    pipeline mode; SQLite: one count of the batch's owners): the counts are checked before the
    batch commits, and a batch with a create past the limit runs again with a savepoint per
    create, where that create alone fails. The first ones in the queue get the room."""
    limited = ConversationService(
        db=core.db, ids=core.ids, clock=core.clock, policy=core.policy,
        limits=ProductLimits(max_user_groups=3),
    )  # fmt: skip
    owners = ["crowd"] * 5 + ["u9", "u9"]
    outcomes = _creates_in_one_batch(core, limited, owners)
    made = [o for o in outcomes if isinstance(o, CreatedConversation)]
    assert [type(o).__name__ for o in outcomes] == ["CreatedConversation"] * 3 + [
        "ConvhubError"
    ] * 2 + ["CreatedConversation"] * 2, outcomes
    for refused in outcomes[3:5]:
        assert isinstance(refused, ConvhubError)
        assert refused.code is ErrorCode.TOO_MANY_USER_CONVERSATIONS
    assert core.ids_in_table() == {o.conversation.id for o in made}
    assert [core.roles(o.conversation.id) for o in made] == [{"crowd": Role.OWNER}] * 3 + [
        {"u9": Role.OWNER}
    ] * 2
    # A batch that ran twice for a failed check makes the next ones answer checks at once.
    assert core.db._checks_at_once == CHECKS_AT_ONCE_BATCHES
    assert core.create(owner="crowd2").exist is False
    assert core.db._checks_at_once == CHECKS_AT_ONCE_BATCHES - 1


def test_a_batch_counts_an_owners_groups_as_they_stood_at_each_create(core: Core) -> None:
    """Groups made before the batch count, and so do those of the batch's creates before it,
    written by a unit in between that read (a read writes what is held back first): each count
    is answered as it would have been at its create, so a batch whose creates all have room
    runs once, and the limit holds."""
    limited = ConversationService(
        db=core.db, ids=core.ids, clock=core.clock, policy=core.policy,
        limits=ProductLimits(max_user_groups=4),
    )  # fmt: skip
    for _ in range(2):
        run(limited.create_conversation(core.caller, core.create_command(owner="crowd")))
    other = core.create(owner="other").conversation.id
    started, release = threading.Event(), threading.Event()

    def blocker(uow: UnitOfWork) -> int:
        started.set()
        assert release.wait(30)
        return 0

    def reader(uow: UnitOfWork) -> object:
        return uow.conversations.get(other)  # writes the held-back creates first

    async def batch(*steps: str) -> list[object]:
        first = asyncio.ensure_future(core.db.write(blocker))
        assert await asyncio.to_thread(started.wait, 30)
        tasks: list[asyncio.Future[object]] = []
        for step in steps:
            if step == "read":
                tasks.append(asyncio.ensure_future(core.db.write(reader)))
            else:
                command = core.create_command(owner=step)
                created = limited.create_conversation(core.caller, command)
                tasks.append(asyncio.ensure_future(created))
            while core.db.queued < len(tasks):  # queued in this order
                await asyncio.sleep(0.001)
        release.set()  # one batch
        outcomes = await asyncio.gather(first, *tasks, return_exceptions=True)
        started.clear()
        release.clear()
        return outcomes[1:]

    made = run(batch("crowd", "read", "crowd"))
    assert [type(o).__name__ for o in made] == [
        "CreatedConversation", "Conversation", "CreatedConversation",
    ], made  # fmt: skip
    assert core.db._checks_at_once == 0  # no check failed: the batch ran once
    (refused,) = run(batch("crowd"))
    assert isinstance(refused, ConvhubError)
    assert refused.code is ErrorCode.TOO_MANY_USER_CONVERSATIONS


def test_a_batchs_group_creates_count_their_owners_groups_in_one_statement(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On each engine the writer asks one statement for the counts of a batch's owners (on
    PostgreSQL sent in the pipeline), not one statement a create."""
    grouped: list[list[str]] = []
    alone: list[object] = []
    bind = InList.bind

    def recording_bind(self: InList, dialect: str, values: Any, **others: Any) -> Any:
        if self is participants_store._COUNT_GROUPS:
            grouped.append(sorted(values))
        return bind(self, dialect, values, **others)

    def recording_check(self: Session, statement: Any, *args: Any, **kwargs: Any) -> None:
        alone.append(statement)
        check_around_held(self, statement, *args, **kwargs)

    check_around_held = Session.check_around_held
    monkeypatch.setattr(InList, "bind", recording_bind)
    monkeypatch.setattr(Session, "check_around_held", recording_check)
    owners = [f"owner-{i}" for i in range(5)]
    made = _creates_in_one_batch(core, core.service, owners)
    assert all(isinstance(m, CreatedConversation) and not m.exist for m in made)
    assert grouped == [owners]
    assert participants_store._COUNT_USER_GROUPS not in alone


def test_group_creates_in_two_processes_never_pass_the_limit_together() -> None:
    """PostgreSQL, two writers as two processes have, each with a batch of 20 creates by one
    owner at the same moment: each batch takes its creates' owner locks ahead, in one statement,
    and counts the owner's groups under them, so that the two together make exactly the
    limit."""
    with required_postgres() as url:
        tenant = new_tenant(url)
        engines = [create_database_engine(url, pool_size=4) for _ in range(2)]
        with engines[0].connect() as conn:
            account_id = conn.execute(
                select(accounts.c.id).where(accounts.c.name == tenant.account)
            ).scalar_one()
        caller = Caller.access_key(int(account_id))
        dbs = [GroupCommitDatabase(engine, read_connections=2) for engine in engines]
        try:
            services = [
                ConversationService(
                    db=db,
                    ids=SnowflakeIds(NodeLease(engine).node),
                    clock=FakeClock(),
                    policy=Policy(db=db, clock=FakeClock()),
                    limits=ProductLimits(max_user_groups=5),
                )
                for db, engine in zip(dbs, engines, strict=True)
            ]
            command = CreateConversation(
                app_id=tenant.app_id, owner="crowd", other=None, type=ConversationType.GROUP
            )

            started = [threading.Event(), threading.Event()]
            release = threading.Event()

            def blocker(started: threading.Event) -> Callable[[UnitOfWork], int]:
                def work(uow: UnitOfWork) -> int:
                    started.set()
                    assert release.wait(30)
                    return 0

                return work

            async def scenario() -> list[object]:
                # Both writers wait while 20 creates queue behind each: two batches at once.
                held = [
                    asyncio.ensure_future(db.write(blocker(event)))
                    for db, event in zip(dbs, started, strict=True)
                ]
                for event in started:
                    assert await asyncio.to_thread(event.wait, 30)
                creates = [
                    asyncio.ensure_future(service.create_conversation(caller, command))
                    for _ in range(20)
                    for service in services
                ]
                while sum(db.queued for db in dbs) < len(creates):
                    await asyncio.sleep(0.001)
                release.set()
                await asyncio.gather(*held)
                return await asyncio.gather(*creates, return_exceptions=True)

            outcomes = asyncio.run(scenario())
        finally:
            for db in dbs:
                db.close()
    made = [o for o in outcomes if isinstance(o, CreatedConversation)]
    refused = [o for o in outcomes if isinstance(o, ConvhubError)]
    assert len(made) == 5, outcomes
    assert len(refused) == 35
    assert {o.code for o in refused} == {ErrorCode.TOO_MANY_USER_CONVERSATIONS}


def test_the_group_limit_counts_volcengine_groups_not_coze_conversations(core: Core) -> None:
    limited = ConversationService(
        db=core.db, ids=core.ids, clock=core.clock, policy=core.policy,
        limits=ProductLimits(max_user_groups=1),
    )  # fmt: skip

    def create(**fields: Any) -> CreatedConversation:
        return run(limited.create_conversation(core.caller, core.create_command(**fields)))

    create()
    raises(ErrorCode.TOO_MANY_USER_CONVERSATIONS, create)
    for _ in range(3):  # a user's chats with bots are not groups it joined
        assert create(connector_id="1024", bot_id="b").exist is False
    assert create(type=ConversationType.SINGLE, other="u2").exist is False
