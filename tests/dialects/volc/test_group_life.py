"""Raw-HTTP contract of a group's life (volcengine-im.md §7.3, §7.5-7.14, §7.24-7.25): members,
a user's conversations, per-member settings, marks and dissolution, on both engines."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from convhub.config import Settings, parse_rate_limits
from convhub.store.engine import create_database_engine
from convhub.store.tables import participants
from tests.support import NO_LIMITS, LiveServer, VolcClient, new_tenant

Body = dict[str, Any]
OWNER = 7001
SINGLE, GROUP, LIVE = 1, 2, 100


def ok(volc: VolcClient, action: str, body: Body) -> Body:
    return volc.ok(action, body)


def fails(volc: VolcClient, action: str, body: Body, code: str, status: int = 400) -> None:
    got_status, error = volc.error(action, body)
    assert (got_status, error["Code"]) == (status, code), error


class Group:
    """One conversation and the calls about it."""

    def __init__(self, volc: VolcClient, kind: int = GROUP, owner: int = OWNER) -> None:
        self.volc = volc
        self.app = volc.tenant.app_id
        body: Body = {"AppId": self.app, "OwnerUserId": owner,
                      "ConversationCoreInfo": {"ConversationType": kind}}  # fmt: skip
        if kind == SINGLE:
            body["OtherUserId"] = owner + 1
        self.id = ok(volc, "CreateConversation", body)["ConversationShortId"]
        self.owner = owner

    def body(self, **fields: Any) -> Body:
        return {"AppId": self.app, "ConversationShortId": self.id, **fields}

    def add(self, *users: int, operator: int = OWNER, **info: Any) -> list[int]:
        infos = [{"ParticipantUserId": u, **info} for u in users]
        body = self.body(Operator=operator, ParticipantInfos=infos)
        failed: list[int] = ok(self.volc, "BatchAddConversationParticipant", body)["FailedUserIds"]
        return failed

    def remove(self, *users: int) -> list[int]:
        body = self.body(Operator=OWNER, ParticipantUserIds=list(users))
        failed: list[int] = ok(self.volc, "BatchDeleteConversationParticipant", body)[
            "FailedUserIds"
        ]
        return failed

    def count(self) -> int:
        return int(ok(self.volc, "GetConversationUserCount", self.body())["Count"])

    def member_count(self) -> int:
        body = {"AppId": self.app, "ConversationShortId": [self.id], "SkipMemberCount": False}
        (info,) = ok(self.volc, "BatchGetConversations", body)["ConversationCoreInfos"]
        return int(info["MemberCount"])

    def scan(self, *, limit: int = 20, reverse: bool = False, only: bool = False) -> list[int]:
        seen: list[int] = []
        cursor = 0
        for _ in range(100):
            body = self.body(Cursor=cursor, Limit=limit, Reverse=reverse, OnlyUserIds=only)
            page = ok(self.volc, "ScanConversationParticipantList", body)
            assert -(1 << 31) <= page["NextCursor"] < (1 << 31)
            seen += [p["ParticipantUserId"] for p in page["Participants"]]
            if not page["HasMore"]:
                assert page["NextCursor"] == -1
                return seen
            cursor = page["NextCursor"]
        raise AssertionError("the scan never ended")


def user_conversations(volc: VolcClient, user: int, data_type: int, limit: int = 20) -> list[int]:
    seen: list[int] = []
    cursor = 0
    for _ in range(100):
        body = {"AppId": volc.tenant.app_id, "ParticipantUserId": user, "Cursor": cursor,
                "Limit": limit, "DataType": data_type}  # fmt: skip
        page = ok(volc, "GetUserConversations", body)
        seen += [c["ConversationShortId"] for c in page["ConversationInfos"]]
        if not page["HasMore"]:
            assert page["NextCursor"] == -1
            return seen
        cursor = page["NextCursor"]
    raise AssertionError("the listing never ended")


# --- members -------------------------------------------------------------------------------------


def test_members_join_are_scanned_both_ways_and_counted(volc: VolcClient) -> None:
    group = Group(volc)
    members = list(range(8001, 8046))
    for start in range(0, 45, 20):
        assert group.add(*members[start : start + 20], NickName="n") == []
    everyone = [OWNER, *members]
    assert group.scan() == everyone
    assert group.scan(limit=7, reverse=True) == everyone[::-1]
    assert group.scan(limit=500, only=True) == everyone  # clamped to 50 a page
    assert group.count() == group.member_count() == 46
    page = ok(volc, "ScanConversationParticipantList",
              group.body(Cursor=0, Limit=1, OnlyUserIds=True))  # fmt: skip
    assert page["Participants"] == [
        {"ConversationShortId": group.id, "ParticipantUserId": OWNER,
         "ParticipantUserIdStr": str(OWNER), "Role": 0, "Operator": 0, "AvatarUrl": ""}
    ]  # fmt: skip
    full = ok(volc, "ScanConversationParticipantList", group.body(Cursor=0, Limit=2))
    second = full["Participants"][1]
    assert second["ParticipantUserId"] == 8001 and second["NickName"] == "n"
    assert second["Role"] == 0 and second["Operator"] == OWNER and second["Status"] == 0
    assert full["Participants"][0]["Role"] == 1  # the owner


def test_leaving_rejoining_and_the_owner_who_cannot_be_removed(volc: VolcClient) -> None:
    group = Group(volc)
    group.add(9001, 9002, 9003)
    assert group.remove(9002, OWNER, 424242) == [OWNER]  # a stranger is ignored
    assert group.count() == group.member_count() == 3
    assert ok(volc, "IsUserInConversation", group.body(ParticipantUserId=9002)) == {
        "IsUserInConversation": False
    }
    got = ok(volc, "BatchGetConversationParticipant",
             group.body(ParticipantUserIds=[9003, 424242, 9002]))  # fmt: skip
    assert [(p["ParticipantUserId"], p["Status"]) for p in got["Participants"]] == [
        (9003, 0),
        (9002, 1),
    ]
    assert group.add(9002, Level=3) == []
    assert group.scan() == [OWNER, 9001, 9003, 9002]  # a rejoin joins at the end
    assert group.count() == group.member_count() == 4


def test_add_refusals_and_failures(database_url: str) -> None:
    settings = Settings(
        database_url=database_url, rate_limits=parse_rate_limits(NO_LIMITS),
        max_group_members=4, max_user_groups=2,
    )  # fmt: skip
    with LiveServer(settings) as server:
        volc = VolcClient(server, new_tenant(database_url))
        try:
            group = Group(volc)
            assert group.add(0, -5, 10001) == [0, -5]
            body = group.body(Operator=OWNER, ParticipantInfos=[{"ParticipantUserId": 10002,
                                                                  "Role": 1}])  # fmt: skip
            fails(volc, "BatchAddConversationParticipant", body, "OwnerShouldBeEqual")
            infos = [{"ParticipantUserId": u} for u in (10003, 10004, 10005)]
            body = group.body(Operator=OWNER, ParticipantInfos=infos)
            fails(volc, "BatchAddConversationParticipant", body,
                  "ConversationParticipantsMoreThanLimit")  # fmt: skip
            assert group.count() == 2  # nothing of either refused batch
            Group(volc, owner=10006)
            Group(volc, owner=10006)  # 10006 is now in two groups: its limit
            assert group.add(10006, 10007) == [10006]
            fails(
                volc,
                "CreateConversation",
                {
                    "AppId": volc.tenant.app_id,
                    "OwnerUserId": 10006,
                    "ConversationCoreInfo": {"ConversationType": GROUP},
                },
                "MoreThanUserConversationLimit",
            )
            too_many = group.body(Operator=OWNER, ParticipantInfos=[
                {"ParticipantUserId": u} for u in range(1, 102)])  # fmt: skip
            fails(volc, "BatchAddConversationParticipant", too_many, "InvalidParam")
        finally:
            volc.close()


def test_modify_members(volc: VolcClient) -> None:
    group = Group(volc)
    group.add(11001, 11002, Ext={"a": "1"})
    infos = [
        {"ParticipantUserId": 11001, "Role": 2, "NickName": "admin", "Ext": {"b": "2"},
         "BlockTime": 1_900_000_000, "Level": 5},
        {"ParticipantUserId": 11002, "Role": 1},  # only a transfer makes an owner
        {"ParticipantUserId": OWNER, "Role": 0},  # nor unmakes one
        {"ParticipantUserId": 11999},  # not a member
    ]  # fmt: skip
    body = group.body(Operator=OWNER, ParticipantInfos=infos)
    failed = ok(volc, "BatchModifyConversationParticipant", body)["FailedUserIds"]
    assert sorted(failed) == sorted([11002, OWNER, 11999])
    got = ok(volc, "BatchGetConversationParticipant", group.body(ParticipantUserIds=[11001]))
    (admin,) = got["Participants"]
    assert (admin["Role"], admin["NickName"], admin["Level"]) == (2, "admin", 5)
    assert admin["Ext"] == {"a": "1", "b": "2"} and admin["BlockTime"] == 1_900_000_000


def test_owner_transfer_then_the_old_owner_can_leave(volc: VolcClient) -> None:
    group = Group(volc)
    group.add(12001)
    core = {"ConversationShortId": group.id, "OwnerUserId": 12002}
    fails(volc, "ModifyConversation", {"AppId": group.app, "ConversationCoreInfo": core},
          "ParticipantNotInConversation")  # fmt: skip
    core["OwnerUserId"] = 12001
    ok(volc, "ModifyConversation", {"AppId": group.app, "ConversationCoreInfo": core})
    roles = ok(volc, "BatchGetConversationParticipant",
               group.body(ParticipantUserIds=[OWNER, 12001]))["Participants"]  # fmt: skip
    assert [p["Role"] for p in roles] == [0, 1]
    assert group.remove(OWNER) == []
    assert group.count() == 1


def test_single_chats_keep_their_two_members(volc: VolcClient) -> None:
    single = Group(volc, SINGLE)
    code = "SingleConversationNotSupport"
    body = single.body(Operator=OWNER, ParticipantInfos=[{"ParticipantUserId": 5}])
    fails(volc, "BatchAddConversationParticipant", body, code)
    fails(volc, "BatchDeleteConversationParticipant",
          single.body(Operator=OWNER, ParticipantUserIds=[OWNER + 1]), code)  # fmt: skip
    fails(volc, "BatchModifyConversationParticipant", body, code)
    fails(volc, "DestroyConversation", single.body(OwnerUserId=OWNER), code)
    assert single.count() == 2


# --- a user's conversations ----------------------------------------------------------------------


def test_a_users_conversations_each_once_in_every_order(volc: VolcClient) -> None:
    user = 13001
    made = []
    for _ in range(23):
        group = Group(volc)
        group.add(user)
        made.append(group.id)
    single = Group(volc, SINGLE, owner=user).id
    live = Group(volc, LIVE, owner=user).id
    gone, left = made[3], made[4]
    ok(volc, "DestroyConversation", {"AppId": volc.tenant.app_id, "ConversationShortId": gone,
                                     "OwnerUserId": OWNER})  # fmt: skip
    ok(volc, "BatchDeleteConversationParticipant", {
        "AppId": volc.tenant.app_id, "ConversationShortId": left, "Operator": OWNER,
        "ParticipantUserIds": [user]})  # fmt: skip
    expected = [c for c in made if c not in (gone, left)] + [single, live]
    assert user_conversations(volc, user, 1) == expected  # oldest first
    assert user_conversations(volc, user, 0, limit=6) == expected[::-1]  # newest activity first
    assert user_conversations(volc, user, 2) == [live]
    page = ok(volc, "GetUserConversations", {"AppId": volc.tenant.app_id,
              "ParticipantUserId": user, "Cursor": 0, "Limit": 1, "DataType": 1})  # fmt: skip
    (info,) = page["ConversationInfos"]
    assert info["MemberCount"] == 2 and page["HasMore"] is True
    fails(volc, "GetUserConversations", {"AppId": volc.tenant.app_id, "ParticipantUserId": user,
          "Cursor": 0, "Limit": 0}, "InvalidParam")  # fmt: skip


# --- settings and marks --------------------------------------------------------------------------


def test_member_settings(volc: VolcClient) -> None:
    group = Group(volc)
    group.add(14001)

    def setting(user: int, **fields: Any) -> Body:
        return {"AppId": group.app, "ConversationSettingInfo": {
            "ConversationShortId": group.id, "ParticipantUserId": user, **fields}}  # fmt: skip

    def read(user: int, **fields: Any) -> Body:
        info: Body = ok(volc, "GetConversationSetting", group.body(ParticipantUserId=user,
                        **fields))["ConversationSettingInfo"]  # fmt: skip
        return info

    fresh = read(14001)
    assert (fresh["IsMute"], fresh["IsStickTop"], fresh["StickTopTime"]) == (False, False, 0)
    ok(volc, "ModifyConversationSetting",
       setting(14001, IsMute=True, StickTopTime=5, IsSetFavorite=True, SetFavoriteTime=7,
               Ext={"k": "v"}))  # fmt: skip
    after = read(14001)
    assert after["IsMute"] is True
    assert (after["StickTopTime"], after["IsStickTop"]) == (0, False)  # no IsStickTop flag
    assert (after["SetFavoriteTime"], after["IsSetFavorite"]) == (7, True)
    ok(volc, "ModifyConversationSetting", setting(14001, IsStickTop=True, StickTopTime=9))
    assert read(14001)["StickTopTime"] == 9 and read(14001)["IsMute"] is True
    assert read(14001, NoReadIndex=True)["ReadIndex"] == 0
    fails(volc, "ModifyConversationSetting", setting(14999, IsMute=True),
          "ParticipantNotInConversation")  # fmt: skip
    fails(volc, "GetConversationSetting", group.body(ParticipantUserId=14999), "SettingNotFound")
    group.add(14002, ReadIndex=4)
    assert read(14002)["ReadIndex"] == 4


def test_marks_of_live_groups(volc: VolcClient) -> None:
    live = Group(volc, LIVE)
    ok(volc, "MarkConversation", live.body(MarkTypes=["b", "a", "a"]))
    assert ok(volc, "GetConversationMarks", live.body()) == {"MarkTypes": ["a", "b"]}
    ok(volc, "MarkConversation", live.body(MarkTypes=["a", "zz"], MarkAction=2))
    assert ok(volc, "GetConversationMarks", live.body()) == {"MarkTypes": ["b"]}
    many = [f"m{i}" for i in range(20)]
    fails(volc, "MarkConversation", live.body(MarkTypes=many),
          "ConversationMarkTypeMoreThanLimit")  # fmt: skip
    assert ok(volc, "GetConversationMarks", live.body()) == {"MarkTypes": ["b"]}
    group = Group(volc)
    fails(volc, "GetConversationMarks", group.body(), "OnlyLiveConversationSupport")


# --- dissolution ---------------------------------------------------------------------------------


def test_destroy_is_for_the_owner_and_then_the_conversation_is_gone(
    volc: VolcClient, database_url: str
) -> None:
    group = Group(volc)
    group.add(15001)
    fails(volc, "DestroyConversation", group.body(OwnerUserId=15001), "OnlyOwnerCanOperator")
    ok(volc, "DestroyConversation", group.body(OwnerUserId=OWNER))
    for action, extra in [
        ("DestroyConversation", {"OwnerUserId": OWNER}),
        ("GetConversationUserCount", {}),
        ("ScanConversationParticipantList", {"Cursor": 0, "Limit": 5}),
        ("IsUserInConversation", {"ParticipantUserId": OWNER}),
    ]:
        fails(volc, action, group.body(**extra), "ConversationNotFound")
    assert user_conversations(volc, 15001, 1) == []
    engine = create_database_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            members = conn.execute(
                select(func.count()).where(participants.c.conversation_id == group.id)
            ).scalar_one()
    finally:
        engine.dispose()
    assert members == 2  # nothing deleted


def test_a_live_groups_scan_lists_its_owner_and_admins(volc: VolcClient) -> None:
    live = Group(volc, LIVE)
    live.add(16001, 16002, Role=0)
    live.add(16003, Role=2)
    assert live.scan() == [OWNER, 16003]
    assert live.scan(reverse=True) == [16003, OWNER]
    assert live.count() == 4
    online = live.body(Cursor=0, Limit=5, ScanOnlineParticipant=True)
    page = ok(volc, "ScanConversationParticipantList", online)
    assert (page["Participants"], page["HasMore"], page["NextCursor"]) == ([], False, -1)
