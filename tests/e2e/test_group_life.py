"""End to end: the life of a group, driven by the two official Volcengine Python clients.

Covers shared/reference/volcengine-im.md §7.2-7.14 and §7.24-7.25 (participants, settings,
listing, dissolution, live-group marks) with the choices convhub makes where the reference leaves
one open. Every test talks to a live server through ``volcengine`` (``Service.json``) and
``volcenginesdkcore`` (``UniversalApi``) exactly as test_volc_sdks.py does, on SQLite and on
PostgreSQL, and checks what the clients see and, where it matters, what the database holds.

A refused request must answer its documented ``Code`` with HTTP 400 and write nothing.
"""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from volcengine.ApiInfo import ApiInfo

from convhub.config import DEFAULT_RATE_LIMITS, Settings, parse_rate_limits
from convhub.store.tables import conversations, node_leases, participants
from tests.e2e.test_volc_sdks import (
    Answer,
    CoreSdk,
    Sdk,
    Served,
    VolcSdk,
    _stop,
    convhub_serve,
    database,
    fail,
    ok,
    run_together,
)
from tests.support import (
    NO_LIMITS,
    VERSION,
    LiveServer,
    Tenant,
    child_env,
    convhub_command,
    free_port,
    migrated,
    new_tenant,
    required_postgres,
)

SINGLE, GROUP, LIVE = 1, 2, 100
MEMBER, OWNER, ADMIN = 0, 1, 2
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
BIG = 9_007_199_254_740_000  # user IDs from here on are beyond 2**53: no float may carry them

# The actions of this file and their documented QPS (§4), which are convhub's default limits.
DOCUMENTED_QPS = {
    "CreateConversation": 50,
    "ModifyConversation": 50,
    "DestroyConversation": 50,
    "BatchGetConversations": 100,
    "GetUserConversations": 100,
    "GetConversationUserCount": 100,
    "IsUserInConversation": 100,
    "ModifyConversationSetting": 50,
    "GetConversationSetting": 100,
    "BatchAddConversationParticipant": 50,
    "BatchDeleteConversationParticipant": 50,
    "BatchModifyConversationParticipant": 50,
    "BatchGetConversationParticipant": 100,
    "ScanConversationParticipantList": 100,
    "MarkConversation": 50,
    "GetConversationMarks": 100,
}
GROUP_ACTIONS = tuple(DOCUMENTED_QPS)


# --------------------------------------------------------------------------- the two clients


class GroupVolcSdk(VolcSdk):
    """volc-sdk-python told about every action here. ``Service.json`` hides the HTTP status of
    an error (it raises the body); a response hook on its session lets the test see it."""

    def __init__(self, host: str, access_key: str, secret_key: str) -> None:
        super().__init__(host, access_key, secret_key)
        for name in GROUP_ACTIONS:
            query = {"Action": name, "Version": VERSION}
            self.service.api_info[name] = ApiInfo("POST", "/", query, {}, {})
        self.last_status: int | None = None
        self.service.session.hooks["response"].append(self._saw)

    def _saw(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.last_status = int(response.status_code)

    def call(self, action: str, body: Any) -> Answer:
        self.last_status = None
        answer = super().call(action, body)
        if answer.status is None:
            answer.status = self.last_status
        return answer


CLIENTS: dict[str, Callable[[str, str, str], Sdk]] = {
    "volcengine": GroupVolcSdk,
    "volcenginesdkcore": CoreSdk,
}


def client_for(kind: str, host: str, tenant: Tenant) -> Sdk:
    if kind == "volcenginesdkcore":
        # No retries: a failure must be seen as it happened, not papered over.
        return CoreSdk(host, tenant.access_key, tenant.secret_key, retries=0)
    return GroupVolcSdk(host, tenant.access_key, tenant.secret_key)


class Im:
    """One client acting for one tenant, with the group-life actions spelled out. Every helper
    checks the shape of what it got back; ``refused`` checks a business error."""

    def __init__(self, client: Sdk, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant

    def close(self) -> None:
        self.client.close()

    # -- raw

    def ok(self, action: str, **fields: Any) -> dict[str, Any]:
        return ok(self.client, action, {"AppId": self.tenant.app_id, **fields})

    def refused(self, action: str, code: str, **fields: Any) -> Answer:
        answer = fail(self.client, action, {"AppId": self.tenant.app_id, **fields})
        assert answer.error is not None
        shown = {
            k: v if not isinstance(v, list) or len(v) < 8 else f"[{len(v)} items]"
            for k, v in fields.items()
        }
        assert answer.error["Code"] == code, (
            f"{self.client.name} {action} {shown}: expected {code}, got {answer.error} "
            f"(HTTP {answer.status})"
        )
        assert answer.status == 400, f"{action} {code}: HTTP {answer.status}, expected 400"
        return answer

    # -- conversations

    def create(
        self,
        owner: int,
        kind: int = GROUP,
        *,
        other: int | None = None,
        inbox: int | None = None,
        **core: Any,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "OwnerUserId": owner,
            "ConversationCoreInfo": {"ConversationType": kind, **core},
        }
        if other is not None:
            fields["OtherUserId"] = other
        if inbox is not None:
            fields["InboxType"] = inbox
        made = self.ok("CreateConversation", **fields)
        assert made["Exist"] is False
        return made

    def group(self, owner: int, kind: int = GROUP, **core: Any) -> int:
        made = self.create(owner, kind, **core)
        if kind == GROUP:
            assert made["ConversationInfo"]["MemberCount"] == 1, made
        return int(made["ConversationShortId"])

    def single(self, owner: int, other: int) -> int:
        made = self.create(owner, SINGLE, other=other)
        assert made["ConversationInfo"]["MemberCount"] == 2, made
        return int(made["ConversationShortId"])

    def batch_get(self, ids: Sequence[int], skip: bool | None = None) -> list[dict[str, Any]]:
        fields: dict[str, Any] = {"ConversationShortId": list(ids)}
        if skip is not None:
            fields["SkipMemberCount"] = skip
        infos: list[dict[str, Any]] = self.ok("BatchGetConversations", **fields)[
            "ConversationCoreInfos"
        ]
        return infos

    def info(self, conversation: int) -> dict[str, Any]:
        (found,) = self.batch_get([conversation], skip=False)
        return found

    def member_count(self, conversation: int) -> int:
        count = self.info(conversation)["MemberCount"]
        assert type(count) is int
        return count

    def transfer(self, conversation: int, owner: int) -> None:
        core = {"ConversationShortId": conversation, "OwnerUserId": owner}
        assert self.ok("ModifyConversation", ConversationCoreInfo=core) == {}

    def destroy(self, conversation: int, owner: int) -> None:
        done = self.ok("DestroyConversation", ConversationShortId=conversation, OwnerUserId=owner)
        assert done == {}

    def user_count(self, conversation: int) -> int:
        count = self.ok("GetConversationUserCount", ConversationShortId=conversation)["Count"]
        assert type(count) is int
        return count

    def is_in(self, conversation: int, user: int) -> bool:
        result = self.ok(
            "IsUserInConversation", ConversationShortId=conversation, ParticipantUserId=user
        )
        answer = result["IsUserInConversation"]
        assert type(answer) is bool, result
        return answer

    def conversations_of(
        self,
        user: int,
        *,
        limit: int = 20,
        data_type: int | None = None,
        inbox: int | None = None,
        skip: bool | None = None,
    ) -> list[dict[str, Any]]:
        """GetUserConversations walked by its cursor to the end: every conversation once."""
        fields: dict[str, Any] = {"ParticipantUserId": user, "Limit": limit}
        for name, value in (
            ("DataType", data_type),
            ("InboxType", inbox),
            ("SkipMemberCount", skip),
        ):
            if value is not None:
                fields[name] = value
        seen: list[dict[str, Any]] = []
        cursor = 0
        for _ in range(500):
            page = self.ok("GetUserConversations", Cursor=cursor, **fields)
            infos = page["ConversationInfos"]
            assert isinstance(infos, list), page
            assert len(infos) <= min(limit, 20), (limit, len(infos))
            assert type(page["HasMore"]) is bool, page
            next_cursor = page["NextCursor"]
            assert type(next_cursor) is int and INT64_MIN <= next_cursor <= INT64_MAX, page
            seen += infos
            if not page["HasMore"]:
                assert next_cursor == -1, f"HasMore false, NextCursor {next_cursor} (not -1)"
                # "HasMore: another page exists": none may be announced that turns out empty.
                assert infos or not seen, "the last page was empty although an earlier had more"
                break
            assert infos, f"an empty page with HasMore true (cursor {cursor})"
            cursor = next_cursor
        else:
            pytest.fail(f"GetUserConversations for {user} never ended")
        ids = [i["ConversationShortId"] for i in seen]
        assert len(ids) == len(set(ids)), f"a conversation came twice: {ids}"
        return seen

    def conversation_ids_of(self, user: int, **options: Any) -> list[int]:
        return [int(i["ConversationShortId"]) for i in self.conversations_of(user, **options)]

    # -- participants

    def add(
        self, conversation: int, people: Sequence[int | dict[str, Any]], operator: int
    ) -> list[int]:
        infos = [p if isinstance(p, dict) else {"ParticipantUserId": p} for p in people]
        result = self.ok(
            "BatchAddConversationParticipant",
            ConversationShortId=conversation,
            Operator=operator,
            ParticipantInfos=infos,
        )
        failed = result["FailedUserIds"]
        assert isinstance(failed, list), f"FailedUserIds {failed!r} is not a list"
        return failed

    def delete(self, conversation: int, users: Sequence[int], operator: int) -> list[int]:
        result = self.ok(
            "BatchDeleteConversationParticipant",
            ConversationShortId=conversation,
            Operator=operator,
            ParticipantUserIds=list(users),
        )
        failed = result["FailedUserIds"]
        assert isinstance(failed, list), f"FailedUserIds {failed!r} is not a list"
        return failed

    def modify(
        self, conversation: int, infos: Sequence[dict[str, Any]], operator: int
    ) -> list[int]:
        result = self.ok(
            "BatchModifyConversationParticipant",
            ConversationShortId=conversation,
            Operator=operator,
            ParticipantInfos=list(infos),
        )
        failed = result["FailedUserIds"]
        assert isinstance(failed, list), f"FailedUserIds {failed!r} is not a list"
        return failed

    def participants(self, conversation: int, users: Sequence[int]) -> list[dict[str, Any]]:
        found = self.ok(
            "BatchGetConversationParticipant",
            ConversationShortId=conversation,
            ParticipantUserIds=list(users),
        )["Participants"]
        assert isinstance(found, list)
        return found

    def participant(self, conversation: int, user: int) -> dict[str, Any]:
        (found,) = self.participants(conversation, [user])
        assert found["ParticipantUserId"] == user
        return found

    def scan_pages(
        self,
        conversation: int,
        *,
        limit: int = 20,
        reverse: bool | None = None,
        only_ids: bool | None = None,
    ) -> list[list[dict[str, Any]]]:
        """ScanConversationParticipantList walked by its cursor to the end."""
        fields: dict[str, Any] = {"ConversationShortId": conversation, "Limit": limit}
        if reverse is not None:
            fields["Reverse"] = reverse
        if only_ids is not None:
            fields["OnlyUserIds"] = only_ids
        cap = 50 if only_ids else 20
        pages: list[list[dict[str, Any]]] = []
        cursor = 0
        for _ in range(1000):
            page = self.ok("ScanConversationParticipantList", Cursor=cursor, **fields)
            people = page["Participants"]
            assert isinstance(people, list), page
            assert len(people) <= min(limit, cap), (limit, len(people))
            assert type(page["HasMore"]) is bool, page
            next_cursor = page["NextCursor"]
            # int32 on the wire: the Go client cannot decode anything wider.
            assert type(next_cursor) is int and INT32_MIN <= next_cursor <= INT32_MAX, page
            pages.append(people)
            if not page["HasMore"]:
                assert next_cursor == -1, f"HasMore false, NextCursor {next_cursor} (not -1)"
                assert people or len(pages) == 1, "HasMore was true, then an empty page came"
                break
            assert people, f"an empty page with HasMore true (cursor {cursor})"
            cursor = next_cursor
        else:
            pytest.fail("ScanConversationParticipantList never ended")
        ids = [p["ParticipantUserId"] for page in pages for p in page]
        assert len(ids) == len(set(ids)), "a member came twice in one scan"
        for each in (p for page in pages for p in page):
            assert each["ConversationShortId"] == conversation
            assert each["ParticipantUserIdStr"] == str(each["ParticipantUserId"])
        return pages

    def scan(self, conversation: int, **options: Any) -> list[dict[str, Any]]:
        return [p for page in self.scan_pages(conversation, **options) for p in page]

    def scan_ids(self, conversation: int, **options: Any) -> list[int]:
        return [int(p["ParticipantUserId"]) for p in self.scan(conversation, **options)]

    # -- settings

    def set(self, conversation: int, user: int, **changes: Any) -> None:
        info = {"ConversationShortId": conversation, "ParticipantUserId": user, **changes}
        assert self.ok("ModifyConversationSetting", ConversationSettingInfo=info) == {}

    def setting(
        self, conversation: int, user: int, no_read_index: bool | None = None
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"ConversationShortId": conversation, "ParticipantUserId": user}
        if no_read_index is not None:
            fields["NoReadIndex"] = no_read_index
        found: dict[str, Any] = self.ok("GetConversationSetting", **fields)[
            "ConversationSettingInfo"
        ]
        return found

    # -- marks

    def mark(self, conversation: int, types: Sequence[str], action: int | None = None) -> None:
        fields: dict[str, Any] = {"ConversationShortId": conversation, "MarkTypes": list(types)}
        if action is not None:
            fields["MarkAction"] = action
        assert self.ok("MarkConversation", **fields) == {}

    def marks(self, conversation: int) -> list[str]:
        found = self.ok("GetConversationMarks", ConversationShortId=conversation)["MarkTypes"]
        assert isinstance(found, list), f"MarkTypes {found!r} is not a list"
        return sorted(found)


# --------------------------------------------------------------------------- the database


def stored_members(url: str, conversation: int) -> set[int]:
    """User IDs with a participant row of status 0 (a current member)."""
    with database(url) as engine, engine.connect() as conn:
        rows = conn.execute(
            sa.select(participants.c.user_id).where(
                participants.c.conversation_id == conversation, participants.c.status == 0
            )
        ).scalars()
        return {int(u) for u in rows}


def stored_status(url: str, conversation: int) -> int | None:
    with database(url) as engine, engine.connect() as conn:
        query = sa.select(conversations.c.status).where(conversations.c.id == conversation)
        status = conn.execute(query).scalar_one_or_none()
        return None if status is None else int(status)


def count_by_type(url: str, app_id: int, kind: int) -> int:
    with database(url) as engine, engine.connect() as conn:
        query = sa.select(sa.func.count()).where(
            conversations.c.app_id == app_id, conversations.c.type == kind
        )
        return int(conn.execute(query.select_from(conversations)).scalar_one())


# --------------------------------------------------------------------------- checks


def agree(im: Im, conversation: int, members: Sequence[int]) -> None:
    """MemberCount (BatchGetConversations, SkipMemberCount false), GetConversationUserCount and a
    full scan agree with each other and with the expected members, in join order."""
    assert im.member_count(conversation) == len(members), "MemberCount"
    assert im.user_count(conversation) == len(members), "GetConversationUserCount"
    assert im.scan_ids(conversation) == list(members), "a full scan, in join order"


def by_id(people: Sequence[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(p["ParticipantUserId"]): p for p in people}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(params=sorted(CLIENTS))
def im(request: pytest.FixtureRequest, server: LiveServer, tenant: Tenant) -> Iterator[Im]:
    client = Im(client_for(request.param, server.host, tenant), tenant)
    yield client
    client.close()


def small_limits(url: str, **limits: int) -> Settings:
    return Settings(database_url=url, rate_limits=parse_rate_limits(NO_LIMITS), **limits)


# =========================================================================== 1. the main scenario


def test_a_group_from_creation_to_dissolution(im: Im, database_url: str) -> None:
    owner = BIG
    users = [BIG + 1 + i for i in range(150)]
    never = BIG + 999

    made = im.create(owner, GROUP, Name="the group")
    group = int(made["ConversationShortId"])
    assert made["ConversationInfo"]["MemberCount"] == 1
    members = [owner]
    agree(im, group, members)

    # -- 150 members, in three calls of 20, 30 and 100 (the most one call may carry). Each
    # call's users ascend, but the batches do not: join order is not user-ID order.
    batches = [users[100:120], users[120:150], users[0:100]]
    for batch in batches:
        infos = [
            {
                "ParticipantUserId": u,
                "NickName": f"nick-{u - BIG}",
                "Level": (u - BIG) % 5,
                "Ext": {"k": str(u - BIG)},
                "Role": 7 if u == users[100] else MEMBER,  # an invalid role becomes 0
            }
            for u in batch
        ]
        assert im.add(group, infos, operator=owner) == []
        members += batch
        agree(im, group, members)
    assert stored_members(database_url, group) == set(members)

    seen = im.participants(group, [users[5], never, users[100], owner])
    assert [p["ParticipantUserId"] for p in seen] == [users[5], users[100], owner]
    five, hundred, boss = seen
    assert (five["NickName"], five["Level"], five["Ext"]) == ("nick-6", 1, {"k": "6"})
    assert (five["Role"], five["Status"], five["Operator"]) == (MEMBER, 0, owner)
    assert abs(five["CreateTime"] - time.time()) < 120  # seconds
    assert five.get("BlockTime", 0) == 0
    assert hundred["Role"] == MEMBER
    assert (boss["Role"], boss["Status"]) == (OWNER, 0)

    # -- scans: every member once, in join order; Reverse is newest first.
    forward = im.scan_pages(group, limit=20)
    assert [len(p) for p in forward] == [20] * 7 + [11]
    assert im.scan_ids(group, reverse=True) == members[::-1]
    assert im.scan_ids(group, limit=7) == members
    assert im.scan_ids(group, limit=3, reverse=True) == members[::-1]
    clamped = im.scan_pages(group, limit=100)
    assert len(clamped[0]) == 20, "Limit 100 is clamped to 20"
    assert [int(p["ParticipantUserId"]) for page in clamped for p in page] == members
    only = im.scan_pages(group, limit=100, only_ids=True)
    assert [len(p) for p in only] == [50, 50, 50, 1], "OnlyUserIds: Limit clamped to 50"
    assert [int(p["ParticipantUserId"]) for page in only for p in page] == members
    for each in (p for page in only for p in page):
        assert (each["Role"], each["Operator"], each["AvatarUrl"]) == (0, 0, ""), each
        for name in ("NickName", "Ext", "Level", "CreateTime", "BlockTime", "Status"):
            assert not each.get(name), (name, each)
    assert im.scan_ids(group, only_ids=True, reverse=True, limit=50) == members[::-1]
    full = by_id(im.scan(group))
    assert full[owner]["Role"] == OWNER
    assert full[users[7]]["NickName"] == "nick-8"

    # -- roles, nick names, levels, Ext and BlockTime with BatchModify.
    admin, renamed = users[100], users[0]
    block = int(time.time()) + 3600
    changes = [
        {"ParticipantUserId": admin, "Role": ADMIN, "NickName": "the admin"},
        {
            "ParticipantUserId": renamed,
            "NickName": "renamed",
            "Level": 9,
            "Ext": {"k2": "v2"},
            "BlockTime": block,
        },
    ]
    assert im.modify(group, changes, operator=admin) == []
    got = by_id(im.participants(group, [admin, renamed]))
    assert (got[admin]["Role"], got[admin]["NickName"]) == (ADMIN, "the admin")
    assert got[renamed]["NickName"] == "renamed"
    assert got[renamed]["Level"] == 9
    assert got[renamed]["Ext"] == {"k": "1", "k2": "v2"}, "Ext merges per key"
    assert got[renamed]["BlockTime"] == block
    assert got[renamed]["Role"] == MEMBER
    assert got[renamed]["Operator"] == admin, "Operator: whoever last changed the member"
    agree(im, group, members)

    # -- ownership moves to a member: the new owner is role 1, the old one role 0.
    new_owner = users[120]
    im.transfer(group, new_owner)
    info = im.info(group)
    assert (info["OwnerUserId"], info["CreatorUserId"]) == (new_owner, owner)
    assert info.get("OwnerUserIdStr", str(new_owner)) == str(new_owner)
    roles = {p["ParticipantUserId"]: p["Role"] for p in im.participants(group, [owner, new_owner])}
    assert roles == {owner: MEMBER, new_owner: OWNER}
    assert by_id(im.scan(group))[new_owner]["Role"] == OWNER
    agree(im, group, members)

    # -- 30 members removed; a stranger is ignored; the owner cannot be removed.
    gone = users[0:30]
    failed = im.delete(group, [*gone, never, new_owner], operator=admin)
    assert failed == [new_owner]
    members = [m for m in members if m not in gone]
    agree(im, group, members)
    assert len(members) == 121
    assert stored_members(database_url, group) == set(members)
    assert im.is_in(group, gone[0]) is False
    assert im.is_in(group, users[30]) is True
    assert im.is_in(group, never) is False
    exited = im.participant(group, gone[3])
    assert exited["Status"] == 1
    still = im.participant(group, new_owner)
    assert (still["Role"], still["Status"]) == (OWNER, 0)
    assert im.info(group)["OwnerUserId"] == new_owner
    assert im.scan_ids(group, reverse=True, limit=20) == members[::-1]

    # -- settings of one member.
    member, quiet = users[30], users[31]
    pinned, favoured = int(time.time() * 1000), int(time.time() * 1000) + 5
    im.set(
        group,
        member,
        IsMute=True,
        IsStickTop=True,
        StickTopTime=pinned,
        IsSetFavorite=True,
        SetFavoriteTime=favoured,
        Ext={"a": "1"},
    )
    mine = im.setting(group, member)
    assert mine["ConversationShortId"] == group
    assert mine["ConversationId"] == str(group)
    assert (mine["AppId"], mine["ConversationType"], mine["InboxType"]) == (
        im.tenant.app_id,
        GROUP,
        0,
    )
    assert mine["ParticipantUserId"] == member
    assert (mine["IsMute"], mine["IsStickTop"], mine["StickTopTime"]) == (True, True, pinned)
    assert (mine["IsSetFavorite"], mine["SetFavoriteTime"]) == (True, favoured)
    assert mine["Ext"] == {"a": "1"}
    assert type(mine["ReadIndex"]) is int
    # Times without their flag are ignored; IsMute absent stays; Ext merges.
    im.set(group, member, StickTopTime=5, SetFavoriteTime=6, Ext={"b": "2"})
    mine = im.setting(group, member)
    assert (mine["StickTopTime"], mine["SetFavoriteTime"], mine["IsMute"]) == (
        pinned,
        favoured,
        True,
    )
    assert mine["Ext"] == {"a": "1", "b": "2"}
    # The flag with time 0 unpins; IsMute false is applied.
    im.set(group, member, IsStickTop=True, StickTopTime=0, IsMute=False)
    mine = im.setting(group, member, no_read_index=True)
    assert (mine["StickTopTime"], mine.get("IsStickTop", False), mine["IsMute"]) == (
        0,
        False,
        False,
    )
    assert (mine["SetFavoriteTime"], mine["IsSetFavorite"]) == (favoured, True)
    assert mine["ReadIndex"] == 0
    untouched = im.setting(group, quiet)
    assert untouched["ParticipantUserId"] == quiet
    assert untouched["StickTopTime"] == 0 and untouched.get("SetFavoriteTime", 0) == 0
    assert not untouched.get("IsMute") and not untouched.get("IsStickTop")
    assert not untouched.get("IsSetFavorite") and not untouched.get("Ext")

    # -- what a few members see of their conversations, walked to the end.
    left = gone[0]
    pair = im.single(member, quiet)
    other_group = im.group(member, Name="side")
    assert im.add(other_group, [quiet], operator=member) == []
    old_pair = im.single(left, member)
    expected = {
        member: {group, pair, other_group, old_pair},
        quiet: {group, pair, other_group},
        left: {old_pair},  # it left the group
        owner: {group},
        new_owner: {group},
    }
    truth = {group: len(members), pair: 2, other_group: 2, old_pair: 2}
    for user, wanted in expected.items():
        for data_type in (None, 0, 1):
            infos = im.conversations_of(user, limit=2, data_type=data_type)
            assert {int(i["ConversationShortId"]) for i in infos} == wanted, (user, data_type)
            for each in infos:
                assert each["MemberCount"] == truth[each["ConversationShortId"]], each
        whole = im.conversations_of(user, limit=20, data_type=1)
        assert [i["CreateTime"] for i in whole] == sorted(i["CreateTime"] for i in whole)

    # -- only the owner dissolves it; then it is gone everywhere.
    im.refused(
        "DestroyConversation", "OnlyOwnerCanOperator", ConversationShortId=group, OwnerUserId=owner
    )
    agree(im, group, members)
    im.destroy(group, new_owner)
    assert stored_status(database_url, group) == 1, "the row stays, dissolved"
    assert [i["ConversationShortId"] for i in im.batch_get([group, pair], skip=False)] == [pair]
    assert im.batch_get([group]) == []
    gone_everywhere(im, group, members[1], owner=new_owner)
    for user in [*members, left, owner]:
        assert group not in im.conversation_ids_of(user), user
    assert set(im.conversation_ids_of(member, data_type=1)) == {pair, other_group, old_pair}


def gone_everywhere(im: Im, conversation: int, member: int, *, owner: int) -> None:
    """After dissolution every action on the conversation answers ConversationNotFound."""
    code = "ConversationNotFound"
    core = {"ConversationShortId": conversation, "Name": "again"}
    setting = {"ConversationShortId": conversation, "ParticipantUserId": member, "IsMute": True}
    member_info = [{"ParticipantUserId": member, "NickName": "x"}]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("DestroyConversation", {"OwnerUserId": owner}),
        ("GetConversationUserCount", {}),
        ("IsUserInConversation", {"ParticipantUserId": member}),
        ("BatchAddConversationParticipant", {"Operator": owner, "ParticipantInfos": member_info}),
        ("BatchDeleteConversationParticipant", {"Operator": owner, "ParticipantUserIds": [member]}),
        (
            "BatchModifyConversationParticipant",
            {"Operator": owner, "ParticipantInfos": member_info},
        ),
        ("BatchGetConversationParticipant", {"ParticipantUserIds": [member]}),
        ("ScanConversationParticipantList", {"Cursor": 0, "Limit": 20}),
        ("GetConversationSetting", {"ParticipantUserId": member}),
        ("MarkConversation", {"MarkTypes": ["x"]}),
        ("GetConversationMarks", {}),
    ]
    for action, fields in calls:
        im.refused(action, code, ConversationShortId=conversation, **fields)
    im.refused("ModifyConversation", code, ConversationCoreInfo=core)
    im.refused("ModifyConversationSetting", code, ConversationSettingInfo=setting)


# =========================================================================== 2. participants


def test_participant_rules(im: Im, database_url: str) -> None:
    owner = 1
    group = im.group(owner)

    # Users <= 0 fail alone; an invalid role is 0; FailedUserIds is [] on full success.
    failed = im.add(
        group,
        [
            {
                "ParticipantUserId": 2,
                "NickName": "two",
                "Level": 3,
                "Role": ADMIN,
                "Ext": {"a": "1"},
            },
            {"ParticipantUserId": 3, "Role": 7},
            {"ParticipantUserId": 0},
            {"ParticipantUserId": -5},
            {"ParticipantUserId": 4},
        ],
        operator=owner,
    )
    assert sorted(failed) == [-5, 0]
    assert im.add(group, [5], operator=2) == []
    members = [owner, 2, 3, 4, 5]
    agree(im, group, members)

    got = im.participants(group, [4, 3, 77, 2, owner, 5])
    assert [p["ParticipantUserId"] for p in got] == [4, 3, 2, owner, 5], "request order"
    four, three, two, boss, five = got
    assert three["Role"] == MEMBER, "Role 7 is stored as 0"
    assert (two["Role"], two["NickName"], two["Level"], two["Ext"]) == (ADMIN, "two", 3, {"a": "1"})
    assert (four["Operator"], five["Operator"]) == (owner, 2)
    assert all(p["Status"] == 0 for p in got)
    assert boss["Role"] == OWNER
    joined_two = two["CreateTime"]

    # Re-adding a member overwrites its data; its place in the join order stays.
    again = {
        "ParticipantUserId": 2,
        "NickName": "deux",
        "Level": 4,
        "Role": MEMBER,
        "Ext": {"b": "2"},
    }
    assert im.add(group, [again], operator=owner) == []
    two = im.participant(group, 2)
    assert (two["NickName"], two["Level"], two["Role"], two["Ext"]) == ("deux", 4, 0, {"b": "2"})
    assert two["CreateTime"] == joined_two
    # The owner may be added with role 1 (it is the owner).
    assert (
        im.add(
            group, [{"ParticipantUserId": owner, "Role": OWNER, "NickName": "boss"}], operator=owner
        )
        == []
    )
    boss = im.participant(group, owner)
    assert (boss["Role"], boss["NickName"]) == (OWNER, "boss")
    agree(im, group, members)

    # Delete: strangers are ignored, the owner stays; the removed member is Status 1.
    assert im.delete(group, [3, 88, owner], operator=2) == [owner]
    members.remove(3)
    agree(im, group, members)
    three = im.participant(group, 3)
    assert three["Status"] == 1
    joined_three = three["CreateTime"]
    assert (im.is_in(group, 3), im.is_in(group, 2), im.is_in(group, 88)) == (False, True, False)
    boss = im.participant(group, owner)
    assert (boss["Role"], boss["Status"]) == (OWNER, 0)
    assert im.delete(group, [3, 88], operator=2) == []  # twice: still nobody to remove

    # Modify: strangers, the exited, a second owner and an owner-less group all fail alone.
    block = int(time.time()) + 600
    failed = im.modify(
        group,
        [
            {
                "ParticipantUserId": 2,
                "NickName": "zwei",
                "Ext": {"c": "3"},
                "BlockTime": block,
                "Level": 8,
            },
            {"ParticipantUserId": 3, "NickName": "gone"},
            {"ParticipantUserId": 88, "NickName": "never"},
            {"ParticipantUserId": 5, "Role": OWNER},
            {"ParticipantUserId": owner, "Role": MEMBER},
            {"ParticipantUserId": 4, "Role": ADMIN},
        ],
        operator=4,
    )
    assert sorted(failed) == sorted([3, 88, 5, owner])
    got = by_id(im.participants(group, [2, 3, 5, owner, 4, 88]))
    assert set(got) == {2, 3, 5, owner, 4}
    two = got[2]
    assert (two["NickName"], two["Level"], two["BlockTime"]) == ("zwei", 8, block)
    assert two["Ext"] == {"b": "2", "c": "3"}, "Ext merges per key"
    assert two["Role"] == MEMBER and two["Operator"] == 4
    assert got[3]["Status"] == 1 and got[3].get("NickName") != "gone"
    assert got[5]["Role"] == MEMBER
    assert got[owner]["Role"] == OWNER
    assert got[4]["Role"] == ADMIN
    assert im.info(group)["OwnerUserId"] == owner
    agree(im, group, members)

    # Re-adding an exited member makes it a member again, joined now: last in join order.
    time.sleep(1.1)  # join times are seconds
    assert im.add(group, [3], operator=owner) == []
    members.append(3)
    agree(im, group, members)
    three = im.participant(group, 3)
    assert three["Status"] == 0
    assert three["CreateTime"] > joined_three
    assert im.is_in(group, 3) is True
    assert stored_members(database_url, group) == set(members)

    # Pages that end exactly at the end say so (HasMore false, NextCursor -1).
    assert [len(p) for p in im.scan_pages(group, limit=5)] == [5]
    assert [len(p) for p in im.scan_pages(group, limit=1)] == [1] * 5
    assert im.scan_ids(group, limit=2, reverse=True) == members[::-1]
    assert [len(p) for p in im.scan_pages(group, limit=5, only_ids=True)] == [5]


def test_ownership_transfer(im: Im) -> None:
    group = im.group(10)
    assert im.add(group, [11, 12], operator=10) == []
    assert im.delete(group, [12], operator=10) == []
    for stranger in (12, 13):  # an exited member, a user who never joined
        im.refused(
            "ModifyConversation",
            "ParticipantNotInConversation",
            ConversationCoreInfo={"ConversationShortId": group, "OwnerUserId": stranger},
        )
    assert im.info(group)["OwnerUserId"] == 10
    im.transfer(group, 11)
    assert {p["ParticipantUserId"]: p["Role"] for p in im.participants(group, [10, 11])} == {
        10: MEMBER,
        11: OWNER,
    }
    info = im.info(group)
    assert (info["OwnerUserId"], info["CreatorUserId"], info["MemberCount"]) == (11, 10, 2)
    # The old owner is an ordinary member now: it cannot dissolve, the new one can.
    im.refused(
        "DestroyConversation", "OnlyOwnerCanOperator", ConversationShortId=group, OwnerUserId=10
    )
    im.transfer(group, 10)  # and back
    assert im.participant(group, 11)["Role"] == MEMBER
    assert im.participant(group, 10)["Role"] == OWNER
    agree(im, group, [10, 11])


# =========================================================================== 3. settings


def test_settings(im: Im) -> None:
    group = im.group(20)
    assert im.add(group, [21, 22], operator=20) == []
    assert im.delete(group, [22], operator=20) == []

    # Not a member (never, or not any more): refused, and nothing is stored.
    for user in (23, 22):
        im.refused(
            "ModifyConversationSetting",
            "ParticipantNotInConversation",
            ConversationSettingInfo={
                "ConversationShortId": group,
                "ParticipantUserId": user,
                "IsMute": True,
            },
        )
    im.refused(
        "GetConversationSetting", "SettingNotFound", ConversationShortId=group, ParticipantUserId=23
    )

    defaults = im.setting(group, 21)
    assert (defaults["StickTopTime"], defaults["ReadIndex"]) == (0, 0)
    assert not defaults.get("IsMute") and not defaults.get("IsStickTop")
    assert not defaults.get("SetFavoriteTime") and not defaults.get("IsSetFavorite")

    # The flags say "apply the time"; the answer's flags are the state.
    im.set(group, 21, IsStickTop=False, StickTopTime=123, IsSetFavorite=False, SetFavoriteTime=9)
    same = im.setting(group, 21)
    assert same["StickTopTime"] == 0 and not same.get("IsStickTop")
    assert not same.get("SetFavoriteTime") and not same.get("IsSetFavorite")
    im.set(group, 21, IsSetFavorite=True, SetFavoriteTime=1_700_000_000_000, Ext={"x": "1"})
    im.set(group, 21, IsMute=True, Ext={"y": "2", "x": "3"})
    now = im.setting(group, 21, no_read_index=False)
    assert (now["SetFavoriteTime"], now["IsSetFavorite"]) == (1_700_000_000_000, True)
    assert now["IsMute"] is True
    assert now["Ext"] == {"x": "3", "y": "2"}
    assert now["StickTopTime"] == 0 and not now.get("IsStickTop")
    im.set(group, 21, IsStickTop=True, StickTopTime=1_700_000_000_001)
    now = im.setting(group, 21)
    assert (now["StickTopTime"], now["IsStickTop"], now["IsMute"]) == (
        1_700_000_000_001,
        True,
        True,
    )


# =========================================================================== 4. listing


def test_user_conversations_order_cursor_and_filters(database_url: str, server: LiveServer) -> None:
    tenant = new_tenant(database_url)
    volc = Im(client_for("volcengine", server.host, tenant), tenant)
    core = Im(client_for("volcenginesdkcore", server.host, tenant), tenant)
    try:
        _user_conversations(volc, core, database_url)
    finally:
        volc.close()
        core.close()


def _user_conversations(volc: Im, core: Im, database_url: str) -> None:
    user, friend, star = 31, 32, 33
    # Three conversations a second apart (CreateTime is in seconds), two live groups likewise.
    first = volc.group(user, Name="first")
    live_first = core.group(star, LIVE)
    time.sleep(1.05)
    second = core.group(friend, Name="second")
    assert core.add(second, [user], operator=friend) == []
    live_second = volc.group(star, LIVE)
    time.sleep(1.05)
    third = volc.single(user, friend)
    core.group(friend, LIVE)  # someone else's live group

    # Neither left nor dissolved conversations nor other inboxes are listed.
    left = core.group(friend)
    assert core.add(left, [user], operator=friend) == []
    assert volc.delete(left, [user], operator=friend) == []
    dead = volc.group(user)
    volc.destroy(dead, user)
    boxed = int(core.create(user, GROUP, inbox=1)["ConversationShortId"])

    for im in (volc, core):
        newest = im.conversation_ids_of(user, limit=1)
        assert newest == [third, second, first], "DataType 0: most recent activity first"
        assert im.conversation_ids_of(user, limit=2, data_type=0) == newest
        oldest = im.conversation_ids_of(user, limit=2, data_type=1)
        assert oldest == [first, second, third], "DataType 1: CreateTime ascending"
        assert im.conversation_ids_of(user, inbox=1) == [boxed]
        assert im.conversation_ids_of(user, inbox=1, data_type=1) == [boxed]
        assert im.conversation_ids_of(star, data_type=2, limit=1) == [live_second, live_first]
        assert im.conversation_ids_of(user, data_type=2) == []
        infos = im.conversations_of(user, data_type=1)
        assert [i["MemberCount"] for i in infos] == [1, 2, 2]
        for skip in (False, None):
            counted = im.conversations_of(user, data_type=1, skip=skip)
            assert [i["MemberCount"] for i in counted] == [1, 2, 2]
        skipped = im.conversations_of(user, data_type=1, skip=True)
        assert all(i.get("MemberCount", 0) == 0 for i in skipped), skipped
        for limit in (0, -1):
            im.refused(
                "GetUserConversations",
                "InvalidParam",
                ParticipantUserId=user,
                Cursor=0,
                Limit=limit,
            )

    # Limit above 20 is clamped to 20; walking any page size gives every conversation once.
    many = 43
    made = [volc.group(many, Name=str(i)) for i in range(23)]
    page = core.ok("GetUserConversations", ParticipantUserId=many, Cursor=0, Limit=100)
    assert len(page["ConversationInfos"]) == 20 and page["HasMore"] is True
    for im, limit, data_type in ((volc, 100, 0), (core, 7, 0), (volc, 20, 1), (core, 3, 1)):
        infos = im.conversations_of(many, limit=limit, data_type=data_type)
        assert sorted(i["ConversationShortId"] for i in infos) == sorted(made)
        times = [i["CreateTime"] for i in infos]
        assert times == sorted(times, reverse=data_type == 0)
    exact = core.conversations_of(many, limit=23)  # clamped to 20: two pages
    assert len(exact) == 23
    assert stored_status(database_url, dead) == 1


def test_cursors_hold_while_things_change(im: Im) -> None:
    """A walk that others change under it: members and conversations that stay are each seen
    exactly once, in order; ones removed before their page comes are not seen."""
    owner = 70
    group = im.group(owner)
    joined = [owner, *range(7001, 7041)]
    assert im.add(group, joined[1:], operator=owner) == []

    def walk(reverse: bool, change: Callable[[], None]) -> list[int]:
        fields: dict[str, Any] = {"ConversationShortId": group, "Limit": 10, "Reverse": reverse}
        seen: list[int] = []
        cursor, first = 0, True
        while True:
            page = im.ok("ScanConversationParticipantList", Cursor=cursor, **fields)
            seen += [int(p["ParticipantUserId"]) for p in page["Participants"]]
            if first:
                change()
                first = False
            if not page["HasMore"]:
                assert page["NextCursor"] == -1
                return seen
            cursor = page["NextCursor"]

    # Forward: remove two seen and two unseen members, add three (they join last).
    def forward_change() -> None:
        assert (
            im.delete(group, [joined[1], joined[2], joined[20], joined[30]], operator=owner) == []
        )
        assert im.add(group, [7101, 7102, 7103], operator=owner) == []

    seen = walk(False, forward_change)
    assert len(seen) == len(set(seen)), "a member came twice"
    stayed = [u for u in joined if u not in (joined[20], joined[30])]
    assert [u for u in seen if u in stayed] == stayed, "a member that stayed was skipped"
    assert joined[20] not in seen and joined[30] not in seen
    assert seen == [u for u in [*joined, 7101, 7102, 7103] if u in seen], "not in join order"
    members = [u for u in [*joined, 7101, 7102, 7103] if u not in joined[1:3] + joined[20:31:10]]
    agree(im, group, members)

    # Reverse: newcomers join after the walk began; two seen and two unseen members leave.
    def reverse_change() -> None:
        assert im.add(group, [7201, 7202], operator=owner) == []
        assert (
            im.delete(group, [members[-1], members[-2], members[5], members[6]], operator=owner)
            == []
        )

    seen = walk(True, reverse_change)
    assert len(seen) == len(set(seen)), "a member came twice"
    stayed = [u for u in members if u not in (members[5], members[6])]
    assert [u for u in seen if u in stayed] == stayed[::-1], "a member that stayed was skipped"
    assert members[5] not in seen and members[6] not in seen

    # GetUserConversations: new conversations and a dissolved one while walking.
    user = 71
    kept = [im.group(user, Name=str(i)) for i in range(8)]
    for data_type in (0, 1):
        later: list[int] = []
        doomed: int | None = None
        seen_conversations: list[int] = []
        cursor = 0
        fields = {"ParticipantUserId": user, "Limit": 2, "DataType": data_type}
        while True:
            page = im.ok("GetUserConversations", Cursor=cursor, **fields)
            seen_conversations += [int(i["ConversationShortId"]) for i in page["ConversationInfos"]]
            if doomed is None:
                # After the first page: two new conversations, and one not seen yet dissolved.
                later += [im.group(user, Name="later"), im.single(user, 72 + data_type)]
                doomed = next(c for c in kept if c not in seen_conversations)
                kept.remove(doomed)
                im.destroy(doomed, user)
            if not page["HasMore"]:
                assert page["NextCursor"] == -1
                break
            cursor = page["NextCursor"]
        assert len(seen_conversations) == len(set(seen_conversations)), seen_conversations
        assert set(kept) <= set(seen_conversations), "a conversation that stayed was skipped"
        assert doomed not in seen_conversations
        assert set(seen_conversations) <= {*kept, *later}
        kept += later


# =========================================================================== 5. errors


def test_refusals_change_nothing(im: Im, database_url: str) -> None:
    owner = 40
    group = im.group(owner)
    assert im.add(group, [41, {"ParticipantUserId": 42, "NickName": "kept"}], operator=owner) == []
    pair = im.single(owner, 41)
    members = [owner, 41, 42]
    too_many = list(range(1000, 1101))  # 101 users

    # More than 100 users in one call.
    im.refused(
        "BatchAddConversationParticipant",
        "InvalidParam",
        ConversationShortId=group,
        Operator=owner,
        ParticipantInfos=[{"ParticipantUserId": u} for u in too_many],
    )
    im.refused(
        "BatchDeleteConversationParticipant",
        "InvalidParam",
        ConversationShortId=group,
        Operator=owner,
        ParticipantUserIds=[41, 42, *too_many[2:]],
    )
    im.refused(
        "BatchModifyConversationParticipant",
        "InvalidParam",
        ConversationShortId=group,
        Operator=owner,
        ParticipantInfos=[
            {"ParticipantUserId": u, "NickName": "no"} for u in [41, 42, *too_many[2:]]
        ],
    )
    # Role 1 for somebody who is not the owner fails the whole call.
    im.refused(
        "BatchAddConversationParticipant",
        "OwnerShouldBeEqual",
        ConversationShortId=group,
        Operator=owner,
        ParticipantInfos=[{"ParticipantUserId": 43}, {"ParticipantUserId": 41, "Role": 1}],
    )
    agree(im, group, members)
    assert im.participant(group, 42)["NickName"] == "kept"
    assert im.participant(group, 41)["Role"] == MEMBER
    assert im.participants(group, [43]) == []

    # A single chat's members do not change, and it is not dissolved.
    single_calls: list[tuple[str, dict[str, Any]]] = [
        ("BatchAddConversationParticipant", {"ParticipantInfos": [{"ParticipantUserId": 44}]}),
        ("BatchDeleteConversationParticipant", {"ParticipantUserIds": [41]}),
        (
            "BatchModifyConversationParticipant",
            {"ParticipantInfos": [{"ParticipantUserId": 41, "NickName": "x"}]},
        ),
    ]
    for action, fields in single_calls:
        im.refused(
            action,
            "SingleConversationNotSupport",
            ConversationShortId=pair,
            Operator=owner,
            **fields,
        )
    im.refused(
        "DestroyConversation",
        "SingleConversationNotSupport",
        ConversationShortId=pair,
        OwnerUserId=owner,
    )
    assert (im.member_count(pair), im.user_count(pair)) == (2, 2)
    assert sorted(im.scan_ids(pair)) == [owner, 41]
    assert im.batch_get([pair])[0]["Status"] == 0

    # Only the owner dissolves.
    im.refused(
        "DestroyConversation", "OnlyOwnerCanOperator", ConversationShortId=group, OwnerUserId=41
    )
    assert stored_status(database_url, group) == 0
    agree(im, group, members)

    # Bad page sizes.
    for limit in (0, -1):
        for only in (None, True):
            extra = {} if only is None else {"OnlyUserIds": only}
            im.refused(
                "ScanConversationParticipantList",
                "InvalidParam",
                ConversationShortId=group,
                Cursor=0,
                Limit=limit,
                **extra,
            )
        im.refused(
            "GetUserConversations", "InvalidParam", ParticipantUserId=owner, Cursor=0, Limit=limit
        )

    # Unknown conversations.
    for action, fields in (
        ("IsUserInConversation", {"ParticipantUserId": owner}),
        ("DestroyConversation", {"OwnerUserId": owner}),
        ("GetConversationUserCount", {}),
        ("ScanConversationParticipantList", {"Cursor": 0, "Limit": 20}),
    ):
        im.refused(action, "ConversationNotFound", ConversationShortId=1, **fields)

    # Settings of non-members.
    im.refused(
        "GetConversationSetting", "SettingNotFound", ConversationShortId=group, ParticipantUserId=49
    )
    im.refused(
        "ModifyConversationSetting",
        "ParticipantNotInConversation",
        ConversationSettingInfo={
            "ConversationShortId": group,
            "ParticipantUserId": 49,
            "IsMute": True,
        },
    )
    im.refused(
        "GetConversationSetting", "SettingNotFound", ConversationShortId=group, ParticipantUserId=49
    )

    # Marks are for live groups only.
    for conversation in (group, pair):
        im.refused(
            "MarkConversation",
            "OnlyLiveConversationSupport",
            ConversationShortId=conversation,
            MarkTypes=["vip"],
        )
        im.refused(
            "GetConversationMarks", "OnlyLiveConversationSupport", ConversationShortId=conversation
        )

    assert stored_members(database_url, group) == set(members)
    assert stored_members(database_url, pair) == {owner, 41}


# =========================================================================== 6. marks


def test_live_group_marks(im: Im) -> None:
    live = im.group(60, LIVE)
    assert im.marks(live) == []
    im.mark(live, ["vip", "gift"])  # MarkAction absent: add
    assert im.marks(live) == ["gift", "vip"]
    im.mark(live, ["gift"], action=1)  # twice is fine
    im.mark(live, ["nothing"], action=2)  # deleting an absent mark is a no-op
    assert im.marks(live) == ["gift", "vip"]
    im.mark(live, ["gift"], action=2)
    assert im.marks(live) == ["vip"]

    im.mark(live, [f"m{i:02d}" for i in range(19)], action=1)
    full = sorted(["vip", *(f"m{i:02d}" for i in range(19))])
    assert im.marks(live) == full
    for types in (["over"], ["vip", "over"]):
        im.refused(
            "MarkConversation",
            "ConversationMarkTypeMoreThanLimit",
            ConversationShortId=live,
            MarkTypes=types,
            MarkAction=1,
        )
    assert im.marks(live) == full
    im.mark(live, ["vip", "m00"])  # already there: still 20
    assert im.marks(live) == full
    im.mark(live, ["m00"], action=2)
    im.mark(live, ["new"])
    assert len(im.marks(live)) == 20

    fresh = im.group(61, LIVE)
    im.refused(
        "MarkConversation",
        "ConversationMarkTypeMoreThanLimit",
        ConversationShortId=fresh,
        MarkTypes=[f"t{i}" for i in range(21)],
        Operator=61,
    )
    assert im.marks(fresh) == []
    im.destroy(fresh, 61)
    im.refused("GetConversationMarks", "ConversationNotFound", ConversationShortId=fresh)


# =========================================================================== 7. product limits


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_product_limits(kind: str, database_url: str) -> None:
    tenant, other = new_tenant(database_url), new_tenant(database_url)
    settings = small_limits(
        database_url,
        max_group_members=5,
        max_live_group_members=8,
        max_user_groups=3,
        max_live_groups_per_app=2,
    )
    with LiveServer(settings) as live:
        im = Im(client_for(kind, live.host, tenant), tenant)
        theirs = Im(client_for(kind, live.host, other), other)
        try:
            _member_cap(im, database_url)
            _user_group_cap(im, database_url)
            live_group = _live_group_cap(im, theirs, database_url)
            _live_member_cap(im, live_group)
        finally:
            im.close()
            theirs.close()


def _member_cap(im: Im, url: str) -> None:
    group = im.group(1)
    assert im.add(group, [2, 3, 4], operator=1) == []
    code = "ConversationParticipantsMoreThanLimit"
    im.refused(
        "BatchAddConversationParticipant",
        code,
        ConversationShortId=group,
        Operator=1,
        ParticipantInfos=[{"ParticipantUserId": 5}, {"ParticipantUserId": 6}],
    )
    agree(im, group, [1, 2, 3, 4])
    assert im.participants(group, [5, 6]) == []
    assert im.add(group, [5], operator=1) == []
    # Re-adding a current member at the cap adds nobody.
    assert im.add(group, [{"ParticipantUserId": 2, "NickName": "again"}], operator=1) == []
    im.refused(
        "BatchAddConversationParticipant",
        code,
        ConversationShortId=group,
        Operator=1,
        ParticipantInfos=[{"ParticipantUserId": 6}],
    )
    assert im.delete(group, [5], operator=1) == []
    assert im.add(group, [6], operator=1) == []
    # An exited member coming back counts again.
    im.refused(
        "BatchAddConversationParticipant",
        code,
        ConversationShortId=group,
        Operator=1,
        ParticipantInfos=[{"ParticipantUserId": 5}],
    )
    agree(im, group, [1, 2, 3, 4, 6])
    assert stored_members(url, group) == {1, 2, 3, 4, 6}


def _user_group_cap(im: Im, url: str) -> None:
    busy = 100
    im.single(busy, 999)  # single chats do not count
    groups = [im.group(200 + i) for i in range(5)]
    for group in groups[:3]:
        assert im.add(group, [busy], operator=busy) == []
    # A fourth group: the busy user fails alone, the other one joins.
    assert im.add(groups[3], [busy, 101], operator=1) == [busy]
    assert im.is_in(groups[3], busy) is False and im.is_in(groups[3], 101) is True
    assert (im.member_count(groups[3]), im.user_count(groups[3])) == (2, 2)
    # Leaving one frees a place.
    assert im.delete(groups[0], [busy], operator=200) == []
    assert im.add(groups[3], [busy], operator=1) == []
    assert im.add(groups[4], [busy], operator=1) == [busy]
    assert set(im.conversation_ids_of(busy, data_type=1)) >= {groups[1], groups[2], groups[3]}
    # An owner in three groups cannot create a fourth; a single chat is still fine.
    before = count_by_type(url, im.tenant.app_id, GROUP)
    im.refused(
        "CreateConversation",
        "MoreThanUserConversationLimit",
        OwnerUserId=busy,
        ConversationCoreInfo={"ConversationType": GROUP, "Name": "one too many"},
    )
    assert count_by_type(url, im.tenant.app_id, GROUP) == before
    im.single(busy, 998)


@pytest.mark.parametrize("kind", sorted(CLIENTS))
def test_a_dissolved_group_frees_its_members_places(kind: str, database_url: str) -> None:
    """A user is "in" the groups it can see and act in: a dissolved group, gone from its list
    and answering ConversationNotFound to everything, no longer counts toward its 500."""
    tenant = new_tenant(database_url)
    with LiveServer(small_limits(database_url, max_user_groups=2)) as live:
        im = Im(client_for(kind, live.host, tenant), tenant)
        try:
            busy = 100
            first, second, third = im.group(busy), im.group(201), im.group(202)
            assert im.add(second, [busy], operator=busy) == []
            assert im.add(third, [busy], operator=202) == [busy]
            im.refused(
                "CreateConversation",
                "MoreThanUserConversationLimit",
                OwnerUserId=busy,
                ConversationCoreInfo={"ConversationType": GROUP},
            )
            im.destroy(first, busy)
            assert im.conversation_ids_of(busy) == [second]
            assert im.add(third, [busy], operator=202) == [], "the dissolved group still counts"
            im.destroy(second, 201)
            assert im.group(busy) > 0  # as an owner, too
        finally:
            im.close()


def _live_group_cap(im: Im, theirs: Im, url: str) -> int:
    live_group = im.group(300, LIVE)
    im.group(301, LIVE)
    im.refused(
        "CreateConversation",
        "InvalidParam",
        OwnerUserId=302,
        ConversationCoreInfo={"ConversationType": LIVE},
    )
    assert count_by_type(url, im.tenant.app_id, LIVE) == 2
    theirs.group(300, LIVE)  # the cap is per app
    im.group(302, GROUP)  # and for live groups only
    return live_group


def _live_member_cap(im: Im, live_group: int) -> None:
    """A live group holds max_live_group_members (8 here), not max_group_members (5)."""
    assert im.add(live_group, list(range(401, 408)), operator=300) == []  # 7, with the owner 8
    count = im.user_count(live_group)
    assert count in (7, 8)
    im.refused(
        "BatchAddConversationParticipant",
        "ConversationParticipantsMoreThanLimit",
        ConversationShortId=live_group,
        Operator=300,
        ParticipantInfos=[{"ParticipantUserId": 408}, {"ParticipantUserId": 409}],
    )
    assert im.user_count(live_group) == count
    assert im.is_in(live_group, 408) is False


# =========================================================================== 8. rate limits


def test_default_rate_limits_are_the_documented_qps() -> None:
    assert {a: DEFAULT_RATE_LIMITS.get(a) for a in DOCUMENTED_QPS} == DOCUMENTED_QPS
    assert {a: Settings().rate_limits.get(a) for a in DOCUMENTED_QPS} == DOCUMENTED_QPS


# =========================================================================== 9. concurrency

CHURN_SECONDS = 3.0
CHURN_THREADS = 8
POOL = list(range(5001, 5061))  # 60 users come and go; with the owner well under the cap


def churn(hosts: Sequence[str], tenant: Tenant, conversation: int, owner: int) -> int:
    """Threads add and remove random users of POOL for CHURN_SECONDS, spread over ``hosts``
    and over both clients. Every call must succeed. Returns how many calls were made."""
    barrier = threading.Barrier(CHURN_THREADS, timeout=60)

    def run(index: int) -> list[tuple[str, list[int], Answer]]:
        kind = sorted(CLIENTS)[index % 2]
        client = client_for(kind, hosts[(index // 2) % len(hosts)], tenant)
        rng = random.Random(index)
        done: list[tuple[str, list[int], Answer]] = []
        try:
            barrier.wait()
            deadline = time.monotonic() + CHURN_SECONDS
            while time.monotonic() < deadline:
                users = rng.sample(POOL, rng.randint(1, 8))
                body: dict[str, Any] = {
                    "AppId": tenant.app_id,
                    "ConversationShortId": conversation,
                    "Operator": owner,
                }
                if rng.random() < 0.5:
                    action = "BatchAddConversationParticipant"
                    body["ParticipantInfos"] = [{"ParticipantUserId": u} for u in users]
                else:
                    action = "BatchDeleteConversationParticipant"
                    body["ParticipantUserIds"] = users
                done.append((action, users, client.call(action, body)))
        finally:
            client.close()
        return done

    with ThreadPoolExecutor(max_workers=CHURN_THREADS) as pool:
        calls = [c for each in pool.map(run, range(CHURN_THREADS)) for c in each]
    broken = [(a, u, answer) for a, u, answer in calls if not answer.ok]
    assert not broken, f"{len(broken)} of {len(calls)} calls failed, e.g. {broken[:3]}"
    failed = [
        (a, u, answer.result)
        for a, u, answer in calls
        if answer.result is not None and answer.result["FailedUserIds"] != []
    ]
    assert not failed, failed[:3]
    return len(calls)


def settled(hosts: Sequence[str], tenant: Tenant, conversation: int, owner: int, url: str) -> None:
    """After the churn: every process, both clients, the counts, the scan and the table agree."""
    stored = stored_members(url, conversation)
    assert owner in stored
    for host in hosts:
        for kind in sorted(CLIENTS):
            im = Im(client_for(kind, host, tenant), tenant)
            try:
                scanned = im.scan_ids(conversation)
                assert set(scanned) == stored, (host, kind)
                assert im.member_count(conversation) == len(stored), (host, kind, "MemberCount")
                assert im.user_count(conversation) == len(stored), (host, kind, "Count")
                infos = im.conversations_of(owner)
                assert [i["MemberCount"] for i in infos] == [len(stored)]
                assert len(im.scan_ids(conversation, reverse=True, limit=7)) == len(stored)
            finally:
                im.close()


def test_concurrent_membership_on_two_processes_one_postgresql(tmp_path: Path) -> None:
    with required_postgres() as url:
        tenant = new_tenant(url)  # before the start: the bootstrap only runs on an empty DB
        args = ["--database-url", url, "--no-access-log", "--rate-limits", "*=100000"]
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        with convhub_serve(args, tmp_path / "a") as one, convhub_serve(args, tmp_path / "b") as two:
            hosts = [one.host, two.host]
            setup = Im(client_for("volcengine", one.host, tenant), tenant)
            try:
                owner = 5000
                conversation = setup.group(owner)
                assert setup.add(conversation, POOL[::2], operator=owner) == []
            finally:
                setup.close()
            calls = churn(hosts, tenant, conversation, owner)
            assert calls > 100, calls
            settled(hosts, tenant, conversation, owner, url)
        stopped_cleanly(one)
        stopped_cleanly(two)


def test_concurrent_membership_on_one_sqlite_process(tmp_path: Path) -> None:
    """SQLite is served by one process (serve refuses --workers and a second serve on the
    file): its concurrency is that of one event loop and one writer."""
    url = migrated(f"sqlite:///{tmp_path / 'convhub.db'}")
    tenant = new_tenant(url)
    args = ["--database-url", url, "--no-access-log", "--rate-limits", "*=100000"]
    with serving(args, tmp_path, url) as served:
        setup = Im(client_for("volcenginesdkcore", served.host, tenant), tenant)
        try:
            owner = 5000
            conversation = setup.group(owner)
            assert setup.add(conversation, POOL[::2], operator=owner) == []
        finally:
            setup.close()
        calls = churn([served.host], tenant, conversation, owner)
        assert calls > 100, calls
        settled([served.host], tenant, conversation, owner, url)
    stopped_cleanly(served)


ROUNDS = 4
RACES = ("member cap", "user cap", "owner cap", "live groups per app", "one owner")


CAPS_ENV = {
    "CONVHUB_MAX_GROUP_MEMBERS": "20",
    "CONVHUB_MAX_USER_GROUPS": "5",
    "CONVHUB_MAX_LIVE_GROUPS_PER_APP": "3",
}
SERVE_ARGS = ["--no-access-log", "--rate-limits", "*=100000"]


def test_caps_hold_under_concurrent_calls_on_two_processes(tmp_path: Path) -> None:
    """Racing calls through two processes on one PostgreSQL never overfill a group, never put
    a user in more groups than allowed (as a member or as an owner creating one), never make
    more live groups than an app may have, never leave a group with two owners or an owner
    removed: the answers are exactly those of some serial order."""
    with required_postgres() as url:
        args = ["--database-url", url, *SERVE_ARGS]
        with (
            serving(args, tmp_path / "a", url, env=CAPS_ENV) as one,
            serving(args, tmp_path / "b", url, env=CAPS_ENV) as two,
        ):
            problems = race_the_caps([one.host, two.host], url)
        stopped_cleanly(one)
        stopped_cleanly(two)
    assert not problems, "\n".join(problems)


def test_caps_hold_under_concurrent_calls_on_one_sqlite_process(tmp_path: Path) -> None:
    url = migrated(f"sqlite:///{tmp_path / 'convhub.db'}")
    args = ["--database-url", url, *SERVE_ARGS]
    with serving(args, tmp_path, url, env=CAPS_ENV) as served:
        problems = race_the_caps([served.host], url)
    stopped_cleanly(served)
    assert not problems, "\n".join(problems)


def race_the_caps(hosts: Sequence[str], url: str) -> list[str]:
    """Every race ROUNDS times (a race is not lost every time), each round in a fresh app;
    every wrong outcome is reported, not just the first."""
    kinds = sorted(CLIENTS)
    problems: list[str] = []
    races = (
        _race_the_member_cap,
        _race_the_user_cap,
        _race_the_owner_cap,
        _race_the_live_cap,
        _race_the_owner_transfer,
    )
    for round_ in range(ROUNDS):
        tenant = new_tenant(url)

        def make(index: int, tenant: Tenant = tenant) -> Sdk:
            return client_for(kinds[index % 2], hosts[(index // 2) % len(hosts)], tenant)

        setup = Im(client_for(kinds[round_ % 2], hosts[round_ % len(hosts)], tenant), tenant)
        try:
            for name, race in zip(RACES, races, strict=True):
                try:
                    race(setup, make, url, 10_000 * (round_ + 1))
                except AssertionError as error:
                    problems.append(f"round {round_}, {name}: {str(error)[:300]}")
        finally:
            setup.close()
    return problems


def _race_the_member_cap(im: Im, make: Callable[[int], Sdk], url: str, base: int) -> None:
    owner = base
    group = im.group(owner)
    batches = [[base + 100 + 3 * i + j for j in range(3)] for i in range(16)]

    def body(index: int) -> dict[str, Any]:
        infos = [{"ParticipantUserId": u} for u in batches[index]]
        return {
            "AppId": im.tenant.app_id,
            "ConversationShortId": group,
            "Operator": owner,
            "ParticipantInfos": infos,
        }

    answers = run_together(len(batches), make, "BatchAddConversationParticipant", body)
    refused = [a for a in answers if not a.ok]
    for answer in refused:
        assert answer.error is not None, answer
        assert answer.error["Code"] == "ConversationParticipantsMoreThanLimit", answer
    made = [b for b, a in zip(batches, answers, strict=True) if a.ok]
    assert all(a.result == {"FailedUserIds": []} for a in answers if a.ok), answers
    assert len(made) == 6, f"{len(made)} batches of 3 joined a group of 1 capped at 20"
    members = {owner, *(u for b in made for u in b)}
    assert stored_members(url, group) == members
    assert (im.member_count(group), im.user_count(group)) == (19, 19)
    assert set(im.scan_ids(group)) == members


def _race_the_user_cap(im: Im, make: Callable[[int], Sdk], url: str, base: int) -> None:
    busy = base + 999
    groups = [im.group(base + 200 + i) for i in range(16)]

    def body(index: int) -> dict[str, Any]:
        return {
            "AppId": im.tenant.app_id,
            "ConversationShortId": groups[index],
            "Operator": base + 200 + index,
            "ParticipantInfos": [{"ParticipantUserId": busy}],
        }

    answers = run_together(len(groups), make, "BatchAddConversationParticipant", body)
    assert all(a.ok for a in answers), [a for a in answers if not a.ok][:3]
    failed = [a.result["FailedUserIds"] for a in answers if a.result is not None]
    joined = [g for g, f in zip(groups, failed, strict=True) if f == []]
    assert all(f in ([], [busy]) for f in failed), failed
    assert len(joined) == 5, f"user in {len(joined)} groups, the limit is 5"
    assert {g for g in groups if busy in stored_members(url, g)} == set(joined)
    assert set(im.conversation_ids_of(busy)) == set(joined)
    for g in groups:
        assert im.member_count(g) == (2 if g in joined else 1)


def _race_the_owner_cap(im: Im, make: Callable[[int], Sdk], url: str, base: int) -> None:
    owner = base + 500
    before = count_by_type(url, im.tenant.app_id, GROUP)

    def body(index: int) -> dict[str, Any]:
        core = {"ConversationType": GROUP, "Name": f"owned-{index}"}
        return {"AppId": im.tenant.app_id, "OwnerUserId": owner, "ConversationCoreInfo": core}

    answers = run_together(10, make, "CreateConversation", body)
    made = [a for a in answers if a.ok]
    for answer in (a for a in answers if not a.ok):
        assert answer.error is not None and answer.error["Code"] == (
            "MoreThanUserConversationLimit"
        ), answer
    assert len(made) == 5, f"an owner made {len(made)} groups, the limit is 5"
    assert count_by_type(url, im.tenant.app_id, GROUP) == before + 5
    assert len(im.conversation_ids_of(owner)) == 5


def _race_the_live_cap(im: Im, make: Callable[[int], Sdk], url: str, base: int) -> None:
    def body(index: int) -> dict[str, Any]:
        core = {"ConversationType": LIVE}
        return {
            "AppId": im.tenant.app_id,
            "OwnerUserId": base + 600 + index,
            "ConversationCoreInfo": core,
        }

    answers = run_together(10, make, "CreateConversation", body)
    made = [a for a in answers if a.ok]
    for answer in (a for a in answers if not a.ok):
        assert answer.error is not None and answer.error["Code"] == "InvalidParam", answer
    assert len(made) == 3, f"{len(made)} live groups made in an app that may have 3"
    assert count_by_type(url, im.tenant.app_id, LIVE) == 3


def _race_the_owner_transfer(im: Im, make: Callable[[int], Sdk], url: str, base: int) -> None:
    """Transfers to six members race with removals of the same six: whatever the order, the
    group ends with one owner, a current member, the only one with role 1."""
    owner = base + 700
    group = im.group(owner)
    candidates = [base + 701 + i for i in range(6)]
    assert im.add(group, candidates, operator=owner) == []

    def body(index: int) -> dict[str, Any]:
        target = candidates[index // 2]
        if index % 2:
            return {
                "AppId": im.tenant.app_id,
                "ConversationShortId": group,
                "Operator": owner,
                "ParticipantUserIds": [target],
            }
        core = {"ConversationShortId": group, "OwnerUserId": target}
        return {"AppId": im.tenant.app_id, "ConversationCoreInfo": core}

    barrier = threading.Barrier(12, timeout=60)

    def one(index: int) -> Answer:
        client = make(index // 2)  # a transfer and a removal of one user: different processes
        try:
            barrier.wait()
            action = "BatchDeleteConversationParticipant" if index % 2 else "ModifyConversation"
            return client.call(action, body(index))
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(one, range(12)))
    for index, answer in enumerate(answers):
        target = candidates[index // 2]
        if index % 2:
            assert answer.ok and answer.result is not None, answer
            assert answer.result["FailedUserIds"] in ([], [target]), answer
        elif not answer.ok:
            assert answer.error is not None, answer
            assert answer.error["Code"] == "ParticipantNotInConversation", answer
    final = im.info(group)["OwnerUserId"]
    people = im.scan(group)
    assert [p["ParticipantUserId"] for p in people if p["Role"] == OWNER] == [final], people
    assert im.is_in(group, final) is True
    assert im.member_count(group) == len(people) == len(stored_members(url, group))


@contextmanager
def serving(
    args: Sequence[str],
    workdir: Path,
    url: str,
    *,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[Served]:
    """``convhub serve`` as a child process (with ``env`` added to a clean environment), ready
    once it answers /healthz and each of its workers holds an ID node; an exit fails the test."""
    workdir.mkdir(parents=True, exist_ok=True)
    leased_before = _leases(url)
    port = free_port()
    stdout, stderr = workdir / "stdout.txt", workdir / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [*convhub_command(), "serve", "--port", str(port), *args],
            cwd=workdir,
            env=child_env(env or {}),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    served = Served(process, f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", stdout, stderr)
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as http:
            while True:
                if process.poll() is not None:
                    log = served.log() + served.output()
                    pytest.fail(f"convhub serve exited with {process.returncode}:\n{log}")
                if time.monotonic() > deadline:
                    pytest.fail(f"convhub serve did not become ready:\n{served.log()}")
                try:
                    healthy = http.get(served.base_url + "/healthz").status_code == 200
                except httpx.TransportError:
                    healthy = False
                if healthy and len(_leases(url) - leased_before) == workers:
                    break
                time.sleep(0.05)
        yield served
    finally:
        _stop(process)


def stopped_cleanly(served: Served) -> None:
    assert served.process.returncode in (0, -signal.SIGTERM), served.log()
    log = served.log()
    assert "Traceback" not in log and "ERROR" not in log, log


def _leases(url: str) -> set[str]:
    with database(url) as engine, engine.connect() as conn:
        return set(conn.execute(sa.select(node_leases.c.owner)).scalars())
