"""The typed client against a live convhub, on both engines: a group's life with typed results,
the error envelope as ImError, retries on a real rate limit, pages walked once each, async too."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from convhub.client import NO_RETRIES, AsyncImClient, ImClient, ImError, Retries
from convhub.config import Settings, parse_rate_limits
from convhub.dialects.volc.errors import IM_CODES, VOLC_ERRORS
from convhub.errors import ErrorCode
from convhub.wire import volc
from tests.support import NO_LIMITS, LiveServer, Tenant, migrated, new_tenant

OWNER = 9_007_199_254_740_993  # 2**53 + 1: a float would make it ...992
MEMBERS = [OWNER + i for i in range(1, 7)]
GROUP, TEXT = 2, 10001


class Sent:
    """The (Action, body) of every request an httpx client sends, via an event hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.calls.append((request.url.params["Action"], json.loads(request.content)))

    async def hook(self, request: httpx.Request) -> None:
        self(request)

    def cursors(self, action: str) -> list[int]:
        return [body["Cursor"] for name, body in self.calls if name == action]


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def im(server: LiveServer, tenant: Tenant, sent: Sent) -> Iterator[ImClient]:
    http = httpx.Client(timeout=30, event_hooks={"request": [sent]})
    with http, ImClient(tenant.access_key, tenant.secret_key, endpoint=server.base_url,
                        http_client=http) as client:  # fmt: skip
        yield client


def new_group(im: ImClient, app: int, name: str = "team") -> volc.CreateConversationResult:
    return im.create_conversation(
        AppId=app, OwnerUserId=OWNER, ConversationCoreInfo={"ConversationType": GROUP, "Name": name}
    )


def test_a_group_is_made_filled_written_and_read_with_typed_results(
    im: ImClient, tenant: Tenant, sent: Sent
) -> None:
    app = tenant.app_id
    created = new_group(im, app)
    group = created["ConversationShortId"]
    assert created["Exist"] is False and created["ConversationId"] == str(group)
    info = created["ConversationInfo"]
    assert (info["OwnerUserId"], info["OwnerUserIdStr"]) == (OWNER, str(OWNER))
    assert (info["Name"], info["ConversationType"], info["AppId"]) == ("team", GROUP, app)

    added = im.batch_add_conversation_participant(
        AppId=app, ConversationShortId=group, Operator=OWNER,
        ParticipantInfos=[{"ParticipantUserId": user, "NickName": f"n{user}"} for user in MEMBERS],
    )  # fmt: skip
    assert added == {"FailedUserIds": []}
    count = im.get_conversation_user_count(AppId=app, ConversationShortId=group)
    assert count == {"Count": 1 + len(MEMBERS)}

    sent_ids = [
        im.send_message(AppId=app, ConversationShortId=group, Sender=sender, MsgType=TEXT,
                        Content=json.dumps({"text": f"m{i}"}))["MessageId"]
        for i, sender in enumerate([OWNER, *MEMBERS])
    ]  # fmt: skip
    messages = list(
        im.iter_conversation_messages(AppId=app, ConversationShortId=group, Cursor=0, Limit=3)
    )
    assert [m["MessageId"] for m in messages] == sent_ids
    assert [m["IndexInConversation"] for m in messages] == list(range(1, 8))
    assert [m["Sender"] for m in messages] == [OWNER, *MEMBERS]
    assert sent.cursors("GetConversationMessages") == [0, 4, 7]  # each page once

    newest_first = im.iter_conversation_messages(
        AppId=app, ConversationShortId=group, Cursor=0, Limit=2, Reverse=1
    )
    assert [m["MessageId"] for m in newest_first] == sent_ids[::-1]
    assert sent.cursors("GetConversationMessages")[3:] == [0, 5, 3, 1]

    assert im.modify_conversation(
        AppId=app, ConversationCoreInfo={"ConversationShortId": group, "Notice": "hi"}
    ) == {}  # fmt: skip
    (read,) = im.batch_get_conversations(AppId=app, ConversationShortId=[group])[
        "ConversationCoreInfos"
    ]
    assert read["Notice"] == "hi" and read["ConversationShortId"] == group


def test_members_are_walked_page_by_page_in_join_order(
    im: ImClient, tenant: Tenant, sent: Sent
) -> None:
    app = tenant.app_id
    group = new_group(im, app)["ConversationShortId"]
    infos: list[volc.NewParticipantInfo] = [{"ParticipantUserId": u} for u in MEMBERS]
    im.batch_add_conversation_participant(
        AppId=app, ConversationShortId=group, Operator=OWNER, ParticipantInfos=infos
    )
    members = im.iter_conversation_participant_list(
        AppId=app, ConversationShortId=group, Cursor=0, Limit=3
    )
    assert [p["ParticipantUserId"] for p in members] == [OWNER, *MEMBERS]
    assert sent.cursors("ScanConversationParticipantList") == [0, 3, 6]


def test_a_users_conversations_are_walked_once_each(
    im: ImClient, tenant: Tenant, sent: Sent
) -> None:
    app = tenant.app_id
    made = {new_group(im, app, f"g{i}")["ConversationShortId"] for i in range(5)}
    walked = [
        c["ConversationShortId"]
        for c in im.iter_user_conversations(
            AppId=app, ParticipantUserId=OWNER, Cursor=0, Limit=2, DataType=1
        )
    ]
    assert sorted(walked) == sorted(made) and len(walked) == 5
    cursors = sent.cursors("GetUserConversations")
    assert len(cursors) == 3 and len(set(cursors)) == 3


def test_a_refusal_raises_im_error_with_the_envelopes_fields(im: ImClient, tenant: Tenant) -> None:
    with pytest.raises(ImError) as raised:
        im.get_conversation_user_count(AppId=tenant.app_id, ConversationShortId=1)
    error = raised.value
    assert (error.code, error.code_n, error.status) == (
        "ConversationNotFound", IM_CODES["ConversationNotFound"], 400)  # fmt: skip
    assert error.message and error.message in str(error)
    assert error.request_id and error.request_id in str(error)

    with pytest.raises(ImError) as raised:
        im.create_conversation(AppId=tenant.app_id, ConversationCoreInfo={"ConversationType": 2})
    assert raised.value.code == "InvalidParam" and "OwnerUserId" in raised.value.message


def test_a_wrong_secret_is_signature_does_not_match(server: LiveServer, tenant: Tenant) -> None:
    im = ImClient(tenant.access_key, "not-the-secret", endpoint=server.base_url)
    with im, pytest.raises(ImError) as raised:
        im.get_conversation_user_count(AppId=tenant.app_id, ConversationShortId=1)
    code, code_n, status = VOLC_ERRORS[ErrorCode.SIGNATURE_MISMATCH]
    assert (raised.value.code, raised.value.code_n, raised.value.status) == (code, code_n, status)


def test_the_async_client_does_the_same(server: LiveServer, tenant: Tenant, sent: Sent) -> None:
    app = tenant.app_id

    async def scenario() -> list[int]:
        http = httpx.AsyncClient(timeout=30, event_hooks={"request": [sent.hook]})
        keys = tenant.access_key, tenant.secret_key
        async with http, AsyncImClient(*keys, endpoint=server.base_url, http_client=http) as im:
            created = await im.create_conversation(
                AppId=app, OwnerUserId=OWNER, ConversationCoreInfo={"ConversationType": GROUP}
            )
            group = created["ConversationShortId"]
            await im.batch_add_conversation_participant(
                AppId=app, ConversationShortId=group, Operator=OWNER,
                ParticipantInfos=[{"ParticipantUserId": u} for u in MEMBERS],
            )  # fmt: skip
            sends = [
                im.send_message(AppId=app, ConversationShortId=group, Sender=u, MsgType=TEXT,
                                Content=f"async {u}")
                for u in MEMBERS
            ]  # fmt: skip
            await asyncio.gather(*sends)
            members = [
                p["ParticipantUserId"]
                async for p in im.iter_conversation_participant_list(
                    AppId=app, ConversationShortId=group, Cursor=0, Limit=4
                )
            ]
            assert members == [OWNER, *MEMBERS]
            senders = [
                m["Sender"]
                async for m in im.iter_conversation_messages(
                    AppId=app, ConversationShortId=group, Cursor=0, Limit=4
                )
            ]
            with pytest.raises(ImError) as raised:
                await im.get_conversation_user_count(AppId=app, ConversationShortId=1)
            assert raised.value.code == "ConversationNotFound" and raised.value.request_id
            return senders

    assert sorted(asyncio.run(scenario())) == MEMBERS
    assert sent.cursors("GetConversationMessages") == [0, 5]


# --- retries against a real rate limit -----------------------------------------------------------

LIMITED = "GetConversationUserCount"


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Tenant]]:
    """A server that admits one GetConversationUserCount a second per account."""
    url = migrated(f"sqlite:///{Path(tmp_path_factory.mktemp('limited')) / 'convhub.db'}")
    settings = Settings(database_url=url, rate_limits=parse_rate_limits(f"{NO_LIMITS},{LIMITED}=1"))
    with LiveServer(settings) as live:
        yield live, new_tenant(url)


def test_flow_limit_exceeded_is_retried_until_the_call_succeeds(
    limited: tuple[LiveServer, Tenant],
) -> None:
    server, tenant = limited
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    retries = Retries(max_retries=8, base_delay=0.1, max_delay=2)
    with ImClient(tenant.access_key, tenant.secret_key, endpoint=server.base_url,
                  retries=retries, sleep=sleep) as im:  # fmt: skip
        group = new_group(im, tenant.app_id)["ConversationShortId"]
        counts = [
            im.get_conversation_user_count(AppId=tenant.app_id, ConversationShortId=group)
            for _ in range(3)
        ]
    assert counts == [{"Count": 1}] * 3
    assert waits, "three calls in a row under a limit of one a second were never refused"
    assert set(waits) == {1.0}  # the server's Retry-After (limits count per second), not backoff


def test_without_retries_the_refusal_is_raised(limited: tuple[LiveServer, Tenant]) -> None:
    server, tenant = limited
    with ImClient(tenant.access_key, tenant.secret_key, endpoint=server.base_url,
                  retries=NO_RETRIES) as im:  # fmt: skip
        group = new_group(im, tenant.app_id)["ConversationShortId"]
        with pytest.raises(ImError) as raised:
            for _ in range(3):
                im.get_conversation_user_count(AppId=tenant.app_id, ConversationShortId=group)
    error = raised.value
    assert (error.code, error.code_n, error.status) == ("FlowLimitExceeded", 100429, 429)
    assert LIMITED in error.message and error.request_id
