"""End to end: cozepy 0.20.0, the official Coze Python SDK, drives a running convhub.

Both clients, used as cozepy's docs show them (``Coze(auth=TokenAuth(token), base_url=...)`` and
``AsyncCoze(auth=AsyncTokenAuth(token), base_url=...)``), call every conversation, message and
feedback method against a live server on both storage engines. Tokens are minted with
``convhub.domain.directory.create_token`` for a fresh account per test. Last, a plain script
written from
the cozepy docs alone runs against ``convhub serve`` with nothing but the server's address and the
token its first start prints. What the SDK needs on the wire: shared/reference/cozepy-wire.md.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from convhub.config import Settings
from convhub.domain.permissions import ALL_PERMISSIONS, Permission
from convhub.store.engine import create_database_engine
from tests import admin
from tests.e2e.test_volc_sdks import Served, assert_stopped_cleanly, convhub_serve
from tests.support import LiveServer, new_tenant

with warnings.catch_warnings():
    # cozepy imports authlib.jose, which authlib itself marks deprecated: not ours to fix.
    # authlib's import installs an "always" filter for that warning; ours goes in front of it.
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore", DeprecationWarning)
    from cozepy import (
        AsyncCoze,
        AsyncHTTPClient,
        AsyncTokenAuth,
        Conversation,
        Coze,
        CozeAPIError,
        LastIDPaged,
        Message,
        SyncHTTPClient,
        TokenAuth,
    )

T = TypeVar("T")

BOT = "7390000000000000001"  # any bot ID: convhub keeps it and lists by it
OTHER_BOT = "7390000000000000002"
USER, OTHER_USER = "alice", "bob"
UNKNOWN_ID = "7370000000000000001"  # a well-formed ID nobody has
CACHE_SECONDS = Settings().access_cache_seconds  # what the `server` fixture runs with
MAX_PAGES = 20  # a pager that never ends is a failure, not a hang

# Coze error codes (shared/reference/coze-docs/coze_error_codes.md)
INVALID_PARAM = 4000
INVALID_CONVERSATION = 4002
META_DATA_OVER_LIMIT = 4003
INVALID_MESSAGE = 4005
INVALID_TOKEN = 4100
PERMISSION_DENIED = 4101


# --------------------------------------------------------------------------- tokens and clients


def mint(
    database_url: str,
    account: str,
    *,
    user: str = USER,
    permissions: Iterable[str] | None = None,
    expires_in: int | None = None,
) -> admin.NewToken:
    engine = create_database_engine(database_url, pool_size=1)
    try:
        return admin.create_token(
            engine, account, user=user, permissions=permissions, expires_in=expires_in
        )
    finally:
        engine.dispose()


def revoke(database_url: str, token_id: int) -> None:
    engine = create_database_engine(database_url, pool_size=1)
    try:
        admin.revoke_token(engine, token_id)
    finally:
        engine.dispose()


@contextmanager
def sync_coze(server: LiveServer, token: str) -> Iterator[Coze]:
    http = SyncHTTPClient(timeout=30)
    try:
        yield Coze(auth=TokenAuth(token), base_url=server.base_url, http_client=http)
    finally:
        http.close()


def run_async(server: LiveServer, token: str, scenario: Callable[[AsyncCoze], Awaitable[T]]) -> T:
    """``scenario`` with an AsyncCoze client, in an event loop of its own."""

    async def main() -> T:
        http = AsyncHTTPClient(timeout=30)
        try:
            client = AsyncCoze(
                auth=AsyncTokenAuth(token), base_url=server.base_url, http_client=http
            )
            return await scenario(client)
        finally:
            await http.aclose()

    return asyncio.run(main())


@pytest.fixture
def account(database_url: str) -> str:
    """A new account (with its one app): tests never see each other's conversations."""
    return new_tenant(database_url).account


@pytest.fixture
def token(database_url: str, account: str) -> str:
    return mint(database_url, account).token


@pytest.fixture
def coze(server: LiveServer, token: str) -> Iterator[Coze]:
    with sync_coze(server, token) as client:
        yield client


# --------------------------------------------------------------------------- checks


def refused(code: int, call: Callable[[], object]) -> CozeAPIError:
    """The call raised CozeAPIError with ``code``, a message and the x-tt-logid of the answer."""
    with pytest.raises(CozeAPIError) as caught:
        call()
    return _checked(code, caught.value)


async def arefused(code: int, call: Awaitable[object]) -> CozeAPIError:
    try:
        await call
    except CozeAPIError as error:
        return _checked(code, error)
    pytest.fail(f"expected CozeAPIError {code}, the call succeeded")


def _checked(code: int, error: CozeAPIError) -> CozeAPIError:
    assert error.code == code, f"expected code {code}, got {error}"
    assert error.msg, error
    assert error.logid, f"no x-tt-logid on the error answer: {error}"
    return error


def now() -> int:
    return int(time.time())


def assert_recent(seconds: int | None, since: int) -> None:
    """A 10-digit Unix time in seconds, taken during the test."""
    assert seconds is not None
    assert since - 1 <= seconds <= now() + 1, (seconds, since)


def assert_id(value: str | None) -> str:
    assert value is not None and value.isdigit() and int(value) > 0, value
    return value


def chunks(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


@dataclass
class Page:
    ids: list[str]
    first_id: str | None
    last_id: str | None
    has_more: bool


def page_of(pager: LastIDPaged[Message]) -> Page:
    ids = [assert_id(m.id) for m in pager.items]
    return Page(ids, pager.first_id, pager.last_id, pager.has_more)


def walk(pager: LastIDPaged[Message]) -> list[Page]:
    """Every page, as the SDK's own iteration fetches them (``after_id`` = the last ``last_id``)."""
    pages = [page_of(p) for p in itertools.islice(pager.iter_pages(), MAX_PAGES + 1)]
    assert len(pages) <= MAX_PAGES, "the pager did not stop"
    return pages


def assert_pages(pages: list[Page], expected: list[list[str]]) -> None:
    assert [p.ids for p in pages] == expected
    for index, page in enumerate(pages):
        assert (page.first_id, page.last_id) == (page.ids[0], page.ids[-1])
        assert page.has_more is (index < len(pages) - 1), (index, page)


def conversation_with_messages(coze: Coze, count: int, bot_id: str = BOT) -> tuple[str, list[str]]:
    """A conversation and the IDs of ``count`` messages added to it, oldest first."""
    conversation = coze.conversations.create(bot_id=bot_id)
    ids = []
    for i in range(count):
        made = coze.conversations.messages.create(
            conversation_id=conversation.id,
            role="user" if i % 2 == 0 else "assistant",
            content=f"message {i + 1}",
            content_type="text",
        )
        ids.append(assert_id(made.id))
    assert len(set(ids)) == count
    return conversation.id, ids


def listed_ids(coze: Coze, bot_id: str = BOT) -> list[str]:
    return [c.id for c in itertools.islice(coze.conversations.list(bot_id=bot_id), 500)]


def same_conversation(a: Conversation, b: Conversation) -> None:
    fields = ("id", "name", "meta_data", "last_section_id", "created_at", "creator_id")
    assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}
    assert a.connector_id == b.connector_id


# =========================================================================== 1. conversations


def test_create_retrieve_rename_clear_delete(coze: Coze) -> None:
    since = now()
    made = coze.conversations.create(
        bot_id=BOT,
        name="杭州美食",
        meta_data={"uuid": "newid1234", "k": "v"},
        connector_id="1024",
        messages=[
            Message.build_user_question_text("hello", meta_data={"m": "1"}),
            Message.build_assistant_answer("hi there"),
        ],
    )
    assert_id(made.id)
    assert made.name == "杭州美食"
    assert made.meta_data == {"uuid": "newid1234", "k": "v"}
    assert made.connector_id == "1024"
    assert made.creator_id == USER
    assert_recent(made.created_at, since)
    assert made.updated_at is not None and made.updated_at >= made.created_at
    section = assert_id(made.last_section_id)
    assert made.response.logid, "no x-tt-logid on a success"

    # The initial messages went in, in order, into the conversation's one section.
    initial = list(coze.conversations.messages.list(conversation_id=made.id, order="asc"))
    assert [(m.role, m.type, m.content, m.content_type) for m in initial] == [
        ("user", "question", "hello", "text"),
        ("assistant", "answer", "hi there", "text"),
    ]
    assert initial[0].meta_data == {"m": "1"}
    assert {m.conversation_id for m in initial} == {made.id}
    assert {m.section_id for m in initial} == {section}

    got = coze.conversations.retrieve(conversation_id=made.id)
    same_conversation(got, made)

    # Rename: the answer and every later read carry the new name, nothing else changes.
    renamed = coze.conversations.update(conversation_id=made.id, name="推荐杭州美食")
    assert renamed.id == made.id and renamed.name == "推荐杭州美食"
    assert renamed.meta_data == made.meta_data
    assert renamed.last_section_id == section
    assert renamed.created_at == made.created_at
    assert renamed.updated_at is not None and renamed.updated_at >= made.created_at
    again = coze.conversations.update(conversation_id=made.id, name="x" * 100)  # the maximum
    assert again.name == "x" * 100
    assert coze.conversations.retrieve(conversation_id=made.id).name == "x" * 100
    wide = "会" * 100  # 100 characters, 300 bytes: the limit counts characters
    assert coze.conversations.update(conversation_id=made.id, name=wide).name == wide
    assert [c.name for c in coze.conversations.list(bot_id=BOT)] == [wide]

    # Clear: a new section becomes the last one; the messages stay where they were.
    cleared = coze.conversations.clear(conversation_id=made.id)
    assert cleared.conversation_id == made.id
    new_section = assert_id(cleared.id)
    assert new_section != section
    assert coze.conversations.retrieve(conversation_id=made.id).last_section_id == new_section
    kept = list(coze.conversations.messages.list(conversation_id=made.id, order="asc"))
    assert [m.id for m in kept] == [m.id for m in initial]
    assert {m.section_id for m in kept} == {section}
    later = coze.conversations.messages.create(
        conversation_id=made.id, role="user", content="new topic", content_type="text"
    )
    assert later.section_id == new_section
    twice = coze.conversations.clear(conversation_id=made.id)
    assert assert_id(twice.id) not in (section, new_section)

    # Delete: gone for every call, and from the list.
    coze.conversations.delete(conversation_id=made.id)
    refused(INVALID_CONVERSATION, lambda: coze.conversations.retrieve(conversation_id=made.id))
    refused(
        INVALID_CONVERSATION, lambda: coze.conversations.update(conversation_id=made.id, name="n")
    )
    refused(
        INVALID_CONVERSATION,
        lambda: coze.conversations.messages.list(conversation_id=made.id),
    )
    refused(INVALID_CONVERSATION, lambda: coze.conversations.delete(conversation_id=made.id))
    assert listed_ids(coze) == []


def test_create_without_arguments(coze: Coze) -> None:
    since = now()
    made = coze.conversations.create()  # body {}
    assert_id(made.id)
    assert made.meta_data == {}
    assert not made.name
    assert made.connector_id == "1024"  # the API channel, the default
    assert_recent(made.created_at, since)
    assert_id(made.last_section_id)
    got = coze.conversations.retrieve(conversation_id=made.id)
    same_conversation(got, made)
    empty = coze.conversations.messages.list(conversation_id=made.id)
    assert (empty.items, empty.first_id, empty.last_id, empty.has_more) == ([], "", "", False)


def test_list_every_conversation_once_newest_first(coze: Coze) -> None:
    made = [
        coze.conversations.create(bot_id=BOT, name=f"c{i}", meta_data={"i": str(i)})
        for i in range(1, 6)
    ]
    ids = [c.id for c in made]
    newest_first = ids[::-1]
    # Not listed under BOT: another bot's conversation, and one of another channel (Chat SDK).
    other_bot = coze.conversations.create(bot_id=OTHER_BOT, name="elsewhere").id
    coze.conversations.create(bot_id=BOT, connector_id="999", name="chat sdk")

    pager = coze.conversations.list(bot_id=BOT, page_size=2)
    pages = list(itertools.islice(pager.iter_pages(), MAX_PAGES))
    assert [[c.id for c in p.items] for p in pages] == chunks(newest_first, 2)
    assert [p.has_more for p in pages] == [True, True, False]
    everything = list(itertools.islice(coze.conversations.list(bot_id=BOT, page_size=2), 50))
    assert [c.id for c in everything] == newest_first  # each exactly once, newest first
    by_id = {c.id: c for c in everything}
    for original in made:
        same_conversation(by_id[original.id], original)

    third = coze.conversations.list(bot_id=BOT, page_num=3, page_size=2)
    assert ([c.id for c in third.items], third.has_more) == ([ids[0]], False)
    beyond = coze.conversations.list(bot_id=BOT, page_num=4, page_size=2)
    assert (beyond.items, beyond.has_more) == ([], False)
    whole = coze.conversations.list(bot_id=BOT)  # page_size 50
    assert ([c.id for c in whole.items], whole.has_more) == (newest_first, False)
    assert listed_ids(coze, OTHER_BOT) == [other_bot]

    # The order is by creation: renaming the oldest does not move it up.
    coze.conversations.update(conversation_id=ids[0], name="renamed")
    assert listed_ids(coze) == newest_first
    coze.conversations.delete(conversation_id=ids[2])
    assert listed_ids(coze) == [i for i in newest_first if i != ids[2]]
    assert listed_ids(coze, "7390000000000000003") == []  # a bot without conversations


# =========================================================================== 2. messages


def test_message_create_retrieve_update_delete_and_feedback(coze: Coze) -> None:
    conversation = coze.conversations.create(bot_id=BOT)
    cid, section = conversation.id, conversation.last_section_id
    messages = coze.conversations.messages
    since = now()

    question = messages.create(
        conversation_id=cid, role="user", content="hello", content_type="text", meta_data={"k": "v"}
    )
    assert_id(question.id)
    assert (question.conversation_id, question.section_id) == (cid, section)
    assert (question.role, question.type) == ("user", "question")
    assert (question.content, question.content_type) == ("hello", "text")
    assert question.meta_data == {"k": "v"}
    assert_recent(question.created_at, since)
    assert question.response.logid

    answer = messages.create(
        conversation_id=cid, role="assistant", content="hi", content_type="text"
    )
    assert (answer.role, answer.type, answer.content) == ("assistant", "answer", "hi")
    assert not answer.meta_data
    parts = json.dumps([{"type": "text", "text": "look at this"}], ensure_ascii=False)
    rich = messages.create(
        conversation_id=cid, role="user", content=parts, content_type="object_string"
    )
    assert (rich.content, rich.content_type) == (parts, "object_string")
    assert len({question.id, answer.id, rich.id}) == 3

    got = messages.retrieve(conversation_id=cid, message_id=question.id)
    assert got.model_dump() == question.model_dump()

    # Modify (answered under "message", not "data"): content, then meta_data alone.
    edited = messages.update(
        conversation_id=cid, message_id=question.id, content="hello again", content_type="text"
    )
    assert (edited.id, edited.content, edited.content_type) == (question.id, "hello again", "text")
    assert edited.meta_data == {"k": "v"}  # not given, kept
    assert edited.created_at == question.created_at
    assert edited.updated_at is not None and edited.updated_at >= since
    assert messages.retrieve(conversation_id=cid, message_id=question.id).content == "hello again"
    tagged = messages.update(conversation_id=cid, message_id=question.id, meta_data={"k2": "v2"})
    assert (tagged.content, tagged.meta_data) == ("hello again", {"k2": "v2"})
    assert messages.retrieve(conversation_id=cid, message_id=question.id).meta_data == {"k2": "v2"}

    # Feedback: set, replace, remove.
    liked = messages.feedback.create(
        conversation_id=cid,
        message_id=answer.id,
        feedback_type="like",
        reason_types=["accurate"],
        comment="thanks",
    )
    assert liked.response.logid
    messages.feedback.create(conversation_id=cid, message_id=answer.id, feedback_type="unlike")
    messages.feedback.delete(conversation_id=cid, message_id=answer.id)
    refused(
        INVALID_MESSAGE,
        lambda: messages.feedback.create(
            conversation_id=cid, message_id=UNKNOWN_ID, feedback_type="like"
        ),
    )
    refused(
        INVALID_PARAM,
        lambda: messages.feedback.create(
            conversation_id=cid,
            message_id=answer.id,
            feedback_type="meh",
        ),
    )

    # Delete answers the deleted message; it is then gone for every call.
    deleted = messages.delete(conversation_id=cid, message_id=rich.id)
    assert (deleted.id, deleted.content, deleted.content_type) == (rich.id, parts, "object_string")
    refused(INVALID_MESSAGE, lambda: messages.retrieve(conversation_id=cid, message_id=rich.id))
    refused(INVALID_MESSAGE, lambda: messages.delete(conversation_id=cid, message_id=rich.id))
    refused(
        INVALID_MESSAGE,
        lambda: messages.update(
            conversation_id=cid, message_id=rich.id, content="x", content_type="text"
        ),
    )
    assert [m.id for m in messages.list(conversation_id=cid)] == [answer.id, question.id]


def test_message_list_pages_every_message_once(coze: Coze) -> None:
    cid, ids = conversation_with_messages(coze, 7)
    messages = coze.conversations.messages
    newest_first = ids[::-1]

    # The SDK's own iteration, to the end, in both orders: every message exactly once.
    desc = walk(messages.list(conversation_id=cid, order="desc", limit=2))
    assert_pages(desc, chunks(newest_first, 2))
    asc = walk(messages.list(conversation_id=cid, order="asc", limit=2))
    assert_pages(asc, chunks(ids, 2))
    flat = list(itertools.islice(messages.list(conversation_id=cid, limit=2), 50))
    assert [m.id for m in flat] == newest_first
    assert [m.content for m in flat] == [f"message {n}" for n in range(7, 0, -1)]
    whole = messages.list(conversation_id=cid)  # limit 50: one page
    assert_pages([page_of(whole)], [newest_first])

    # after_id by hand: the page past that message in the chosen order.
    past = page_of(messages.list(conversation_id=cid, order="desc", after_id=ids[3], limit=2))
    assert (past.ids, past.has_more) == ([ids[2], ids[1]], True)
    past = page_of(messages.list(conversation_id=cid, order="asc", after_id=ids[4], limit=2))
    assert (past.ids, past.has_more) == ([ids[5], ids[6]], False)

    # before_id walks back: from the last page, each time before the first message shown.
    for pages in (desc, asc):
        order = "desc" if pages is desc else "asc"
        back = [pages[-1]]
        while back[-1].has_more or len(back) == 1:
            assert len(back) <= MAX_PAGES, "the walk back did not stop"
            first_id = back[-1].first_id
            assert first_id
            back.append(
                page_of(
                    messages.list(conversation_id=cid, order=order, before_id=first_id, limit=2)
                )
            )
        assert [p.ids for p in back] == [p.ids for p in reversed(pages)], order
        assert [p.has_more for p in back[1:]] == [True] * (len(back) - 2) + [False], order
        for page in back:
            assert (page.first_id, page.last_id) == (page.ids[0], page.ids[-1])

    # A chat ID no message has: an empty page, with "" for the IDs.
    none = messages.list(conversation_id=cid, chat_id="7390000000000000099")
    assert (none.items, none.first_id, none.last_id, none.has_more) == ([], "", "", False)


# =========================================================================== 3. the async client


def test_async_client_covers_every_call(server: LiveServer, token: str) -> None:
    async def scenario(coze: AsyncCoze) -> None:
        since = now()
        made = await coze.conversations.create(
            bot_id=BOT,
            name="async",
            meta_data={"a": "1"},
            connector_id="1024",
            messages=[Message.build_user_question_text("first")],
        )
        assert_id(made.id)
        assert (made.name, made.meta_data, made.creator_id) == ("async", {"a": "1"}, USER)
        assert_recent(made.created_at, since)
        same_conversation(await coze.conversations.retrieve(conversation_id=made.id), made)
        renamed = await coze.conversations.update(conversation_id=made.id, name="renamed async")
        assert renamed.name == "renamed async"
        assert (await coze.conversations.retrieve(conversation_id=made.id)).name == "renamed async"

        others = [(await coze.conversations.create(bot_id=BOT)).id for _ in range(4)]
        pager = await coze.conversations.list(bot_id=BOT, page_size=2)
        pages = [[c.id for c in page.items] async for page in pager.iter_pages()]
        assert pages == chunks([*others[::-1], made.id], 2)
        listed = [c.id async for c in await coze.conversations.list(bot_id=BOT, page_size=2)]
        assert listed == [*others[::-1], made.id]

        messages = coze.conversations.messages
        ids = [m.id async for m in await messages.list(conversation_id=made.id)]
        for i in range(6):
            created = await messages.create(
                conversation_id=made.id,
                role="assistant" if i % 2 else "user",
                content=f"async {i}",
                content_type="text",
                meta_data={"i": str(i)},
            )
            assert created.type == ("answer" if i % 2 else "question")
            ids.append(assert_id(created.id))
        assert len(ids) == 7 and len(set(ids)) == 7
        for order, expected in (("desc", ids[::-1]), ("asc", ids)):
            pager2 = await messages.list(conversation_id=made.id, order=order, limit=2)
            walked = [[m.id for m in page.items] async for page in pager2.iter_pages()]
            assert walked == chunks(expected, 2), order
        back = await messages.list(conversation_id=made.id, order="desc", before_id=ids[2], limit=2)
        assert ([m.id for m in back.items], back.has_more) == ([ids[4], ids[3]], True)

        got = await messages.retrieve(conversation_id=made.id, message_id=ids[1])
        assert (got.content, got.meta_data) == ("async 0", {"i": "0"})
        edited = await messages.update(
            conversation_id=made.id, message_id=ids[1], content="edited", content_type="text"
        )
        assert (edited.id, edited.content) == (ids[1], "edited")
        await messages.feedback.create(
            conversation_id=made.id, message_id=ids[2], feedback_type="like", comment="good"
        )
        await messages.feedback.delete(conversation_id=made.id, message_id=ids[2])
        deleted = await messages.delete(conversation_id=made.id, message_id=ids[1])
        assert (deleted.id, deleted.content) == (ids[1], "edited")
        await arefused(
            INVALID_MESSAGE, messages.retrieve(conversation_id=made.id, message_id=ids[1])
        )

        section = await coze.conversations.clear(conversation_id=made.id)
        assert section.conversation_id == made.id and section.id != made.last_section_id
        after = await coze.conversations.retrieve(conversation_id=made.id)
        assert after.last_section_id == section.id
        remaining = [m.id async for m in await messages.list(conversation_id=made.id)]
        assert remaining == [i for i in ids[::-1] if i != ids[1]]

        await coze.conversations.delete(conversation_id=made.id)
        await arefused(INVALID_CONVERSATION, coze.conversations.retrieve(conversation_id=made.id))
        await arefused(
            INVALID_PARAM, coze.conversations.update(conversation_id=others[0], name="y" * 101)
        )

    run_async(server, token, scenario)


# =========================================================================== 4. who may do what


def test_token_without_edit_permission_cannot_rename(
    server: LiveServer, database_url: str, account: str, coze: Coze
) -> None:
    made = coze.conversations.create(bot_id=BOT, name="original")
    limited = mint(
        database_url, account, permissions=ALL_PERMISSIONS - {Permission.EDIT_CONVERSATION}
    )
    with sync_coze(server, limited.token) as reader:
        # Same user, same app: it sees the conversation and may do all but edit it.
        assert reader.conversations.retrieve(conversation_id=made.id).name == "original"
        assert listed_ids(reader) == [made.id]
        reader.conversations.messages.create(
            conversation_id=made.id, role="user", content="still allowed", content_type="text"
        )
        for call in (
            lambda: reader.conversations.update(conversation_id=made.id, name="renamed"),
            lambda: reader.conversations.clear(conversation_id=made.id),
            lambda: reader.conversations.delete(conversation_id=made.id),
        ):
            refused(PERMISSION_DENIED, call)
    after = coze.conversations.retrieve(conversation_id=made.id)
    assert (after.name, after.last_section_id) == ("original", made.last_section_id)

    only_read = mint(database_url, account, permissions=[Permission.RETRIEVE_CONVERSATION])
    with sync_coze(server, only_read.token) as reader:
        assert reader.conversations.retrieve(conversation_id=made.id).id == made.id
        refused(PERMISSION_DENIED, lambda: reader.conversations.create(bot_id=BOT))
        refused(PERMISSION_DENIED, lambda: reader.conversations.list(bot_id=BOT))
        refused(
            PERMISSION_DENIED,
            lambda: reader.conversations.messages.list(conversation_id=made.id),
        )
    assert listed_ids(coze) == [made.id]


def test_another_user_cannot_see_the_conversation(
    server: LiveServer, database_url: str, account: str, coze: Coze
) -> None:
    cid, ids = conversation_with_messages(coze, 2)
    coze.conversations.update(conversation_id=cid, name="alice's")
    bob = mint(database_url, account, user=OTHER_USER)  # same account and app, another user
    with sync_coze(server, bob.token) as other:
        refused(INVALID_CONVERSATION, lambda: other.conversations.retrieve(conversation_id=cid))
        assert listed_ids(other) == []
        messages = other.conversations.messages
        for call in (
            lambda: other.conversations.update(conversation_id=cid, name="bob's"),
            lambda: other.conversations.clear(conversation_id=cid),
            lambda: other.conversations.delete(conversation_id=cid),
            lambda: messages.list(conversation_id=cid),
            lambda: messages.create(
                conversation_id=cid, role="user", content="hi", content_type="text"
            ),
            lambda: messages.retrieve(conversation_id=cid, message_id=ids[0]),
            lambda: messages.delete(conversation_id=cid, message_id=ids[0]),
        ):
            refused(INVALID_CONVERSATION, call)
        own = other.conversations.create(bot_id=BOT, name="bob's own")
        assert listed_ids(other) == [own.id]
    got = coze.conversations.retrieve(conversation_id=cid)
    assert got.name == "alice's"
    assert [m.id for m in coze.conversations.messages.list(conversation_id=cid)] == ids[::-1]
    assert listed_ids(coze) == [cid]


def test_revoked_token_is_refused(
    server: LiveServer, database_url: str, account: str, coze: Coze
) -> None:
    made = coze.conversations.create(bot_id=BOT)
    never_used = mint(database_url, account)
    revoke(database_url, never_used.id)
    with sync_coze(server, never_used.token) as client:
        refused(INVALID_TOKEN, lambda: client.conversations.retrieve(conversation_id=made.id))
        refused(INVALID_TOKEN, lambda: client.conversations.create(bot_id=BOT))

    # A token in use stops working within the server's access cache time.
    in_use = mint(database_url, account)
    with sync_coze(server, in_use.token) as client:
        assert client.conversations.retrieve(conversation_id=made.id).id == made.id
        revoke(database_url, in_use.id)
        deadline = time.monotonic() + CACHE_SECONDS + 2
        while True:
            try:
                client.conversations.retrieve(conversation_id=made.id)
            except CozeAPIError as error:
                _checked(INVALID_TOKEN, error)
                break
            assert time.monotonic() < deadline, "a revoked token still works"
            time.sleep(0.1)
        refused(INVALID_TOKEN, lambda: client.conversations.list(bot_id=BOT))
    assert listed_ids(coze) == [made.id]  # the account's other tokens are untouched


def test_expired_token_is_refused(
    server: LiveServer, database_url: str, account: str, coze: Coze
) -> None:
    made = coze.conversations.create(bot_id=BOT)
    lasting = mint(database_url, account, expires_in=3600)
    with sync_coze(server, lasting.token) as client:
        assert client.conversations.retrieve(conversation_id=made.id).id == made.id

    short = mint(database_url, account, expires_in=1)
    with sync_coze(server, short.token) as client:
        deadline = time.monotonic() + 3
        while True:
            try:
                client.conversations.retrieve(conversation_id=made.id)
            except CozeAPIError as error:
                _checked(INVALID_TOKEN, error)
                break
            assert time.monotonic() < deadline, "a token past expires_in still works"
            time.sleep(0.1)
        refused(INVALID_TOKEN, lambda: client.conversations.create(bot_id=BOT))
    assert listed_ids(coze) == [made.id]


def test_unknown_tokens_are_refused(server: LiveServer, coze: Coze) -> None:
    made = coze.conversations.create(bot_id=BOT)
    for bogus in ("pat_" + "0" * 40, "not-a-token"):
        with sync_coze(server, bogus) as client:
            refused(INVALID_TOKEN, lambda: client.conversations.retrieve(conversation_id=made.id))


# =========================================================================== 5. bad requests


def test_unknown_conversation_and_message(coze: Coze) -> None:
    messages = coze.conversations.messages
    for call in (
        lambda: coze.conversations.retrieve(conversation_id=UNKNOWN_ID),
        lambda: coze.conversations.update(conversation_id=UNKNOWN_ID, name="n"),
        lambda: coze.conversations.clear(conversation_id=UNKNOWN_ID),
        lambda: coze.conversations.delete(conversation_id=UNKNOWN_ID),
        lambda: messages.list(conversation_id=UNKNOWN_ID),
        lambda: messages.create(
            conversation_id=UNKNOWN_ID, role="user", content="hi", content_type="text"
        ),
    ):
        refused(INVALID_CONVERSATION, call)

    cid, (mine,) = conversation_with_messages(coze, 1)
    other_cid, (theirs,) = conversation_with_messages(coze, 1)
    for message_id in (UNKNOWN_ID, theirs):  # unknown, or of another conversation
        for call in (
            lambda m=message_id: messages.retrieve(conversation_id=cid, message_id=m),
            lambda m=message_id: messages.update(
                conversation_id=cid, message_id=m, content="x", content_type="text"
            ),
            lambda m=message_id: messages.delete(conversation_id=cid, message_id=m),
        ):
            refused(INVALID_MESSAGE, call)
    assert messages.retrieve(conversation_id=other_cid, message_id=theirs).content == "message 1"
    assert messages.retrieve(conversation_id=cid, message_id=mine).content == "message 1"


def test_name_over_100_characters(coze: Coze) -> None:
    made = coze.conversations.create(bot_id=BOT, name="kept")
    refused(
        INVALID_PARAM, lambda: coze.conversations.update(conversation_id=made.id, name="n" * 101)
    )
    refused(
        INVALID_PARAM, lambda: coze.conversations.update(conversation_id=made.id, name="会" * 101)
    )
    assert coze.conversations.retrieve(conversation_id=made.id).name == "kept"
    refused(INVALID_PARAM, lambda: coze.conversations.create(bot_id=BOT, name="n" * 101))
    assert listed_ids(coze) == [made.id]  # the refused create made nothing


def test_meta_data_over_the_limits(coze: Coze) -> None:
    biggest = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}  # 16 pairs, 64 / 512 chars
    made = coze.conversations.create(bot_id=BOT, meta_data=biggest)
    assert coze.conversations.retrieve(conversation_id=made.id).meta_data == biggest

    too_much = [
        {f"k{i}": "v" for i in range(17)},  # 17 pairs
        {"k" * 65: "v"},  # key over 64 characters
        {"k": "v" * 513},  # value over 512 characters
    ]
    for meta_data in too_much:
        refused(
            META_DATA_OVER_LIMIT,
            lambda meta_data=meta_data: coze.conversations.create(bot_id=BOT, meta_data=meta_data),
        )
    assert listed_ids(coze) == [made.id]

    messages = coze.conversations.messages
    message = messages.create(
        conversation_id=made.id, role="user", content="hi", content_type="text", meta_data=biggest
    )
    assert message.meta_data == biggest
    for meta_data in too_much:
        refused(
            META_DATA_OVER_LIMIT,
            lambda meta_data=meta_data: messages.create(
                conversation_id=made.id,
                role="user",
                content="hi",
                content_type="text",
                meta_data=meta_data,
            ),
        )
        refused(
            META_DATA_OVER_LIMIT,
            lambda meta_data=meta_data: messages.update(
                conversation_id=made.id, message_id=message.id, meta_data=meta_data
            ),
        )
    assert [m.id for m in messages.list(conversation_id=made.id)] == [message.id]
    assert messages.retrieve(conversation_id=made.id, message_id=message.id).meta_data == biggest


# =========================================================================== 6. the docs script

# What a newcomer writes from cozepy's README and the Coze API docs: the token and the base URL
# from the environment, nothing convhub-specific.
DOCS_SCRIPT = """\
import json
import os

from cozepy import COZE_CN_BASE_URL, Coze, CozeAPIError, Message, TokenAuth

coze_api_token = os.getenv("COZE_API_TOKEN")
coze_api_base = os.getenv("COZE_API_BASE") or COZE_CN_BASE_URL
coze = Coze(auth=TokenAuth(token=coze_api_token), base_url=coze_api_base)
bot_id = "7390000000000000001"

conversation = coze.conversations.create(
    bot_id=bot_id, messages=[Message.build_user_question_text("Hi, who are you?")]
)
other = coze.conversations.create(bot_id=bot_id, name="second")
conversation = coze.conversations.update(conversation_id=conversation.id, name="first chat")
conversation = coze.conversations.retrieve(conversation_id=conversation.id)
listed = [c.id for c in coze.conversations.list(bot_id=bot_id, page_size=1)]
section = coze.conversations.clear(conversation_id=conversation.id)

message = coze.conversations.messages.create(
    conversation_id=conversation.id, role="user", content="How are you?", content_type="text"
)
for i in range(3):
    coze.conversations.messages.create(
        conversation_id=conversation.id, role="assistant", content=f"fine {i}", content_type="text"
    )
pager = coze.conversations.messages.list(conversation_id=conversation.id, limit=2)
messages = [m.id for m in pager]
message = coze.conversations.messages.retrieve(
    conversation_id=conversation.id, message_id=message.id
)
modified = coze.conversations.messages.update(
    conversation_id=conversation.id,
    message_id=message.id,
    content="How are you today?",
    content_type="text",
)
deleted = coze.conversations.messages.delete(
    conversation_id=conversation.id, message_id=message.id
)
remaining = [m.id for m in coze.conversations.messages.list(conversation_id=conversation.id)]
coze.conversations.delete(conversation_id=conversation.id)
try:
    coze.conversations.retrieve(conversation_id=conversation.id)
    after_delete = None
except CozeAPIError as e:
    after_delete = e.code

print(json.dumps({
    "conversation": conversation.id,
    "other": other.id,
    "name": conversation.name,
    "listed": listed,
    "section": section.id,
    "last_section_id": conversation.last_section_id,
    "message": message.id,
    "message_section": message.section_id,
    "messages": messages,
    "modified": modified.content,
    "deleted": deleted.id,
    "remaining": remaining,
    "after_delete": after_delete,
}))
"""


def test_docs_script_against_convhub_serve(tmp_path: Path) -> None:
    def printed(served: Served) -> bool:
        return re.search(r"^\s*Token\s+pat_\S+\s*$", served.output(), re.MULTILINE) is not None

    script = tmp_path / "coze_quick_start.py"
    script.write_text(DOCS_SCRIPT)
    with convhub_serve([], tmp_path, ready=printed) as served:
        output = served.output()
        found = re.search(r"^\s*Token\s+(pat_\S+)\s*$", output, re.MULTILINE)
        assert found, output
        token = found.group(1)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONVHUB_", "COZE_"))}
        env |= {"COZE_API_TOKEN": token, "COZE_API_BASE": served.base_url}
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["name"] == "first chat"
    assert result["listed"] == [result["other"], result["conversation"]]  # newest first
    assert result["section"] != result["last_section_id"]
    assert result["message_section"] == result["section"]  # written after the clear
    assert len(result["messages"]) == 5 == len(set(result["messages"]))  # 1 + 1 + 3, paged by 2
    assert result["messages"][-1] != result["message"]  # the initial message is the oldest
    assert result["message"] in result["messages"]
    assert result["modified"] == "How are you today?"
    assert result["deleted"] == result["message"]
    assert result["message"] not in result["remaining"] and len(result["remaining"]) == 4
    assert result["after_delete"] == INVALID_CONVERSATION

    log, output = served.log(), served.output()
    assert token not in log  # no log line carries the token ...
    assert output.count(token) == 1  # ... it is shown once, in the first-start banner
    assert "coze ListMessages 200 ok" in output  # the request log, on stdout
    assert_stopped_cleanly(served, workers=1)
