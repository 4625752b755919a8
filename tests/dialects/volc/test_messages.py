"""Raw-HTTP contract of the Volcengine message actions (volcengine-im.md §6.5, §7.15-7.23) and
of the one message store both dialects read, on both engines."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import Engine

from convhub.store.engine import create_database_engine
from tests import admin
from tests.dialects.volc.test_group_life import OWNER, Group, fails, ok
from tests.support import LiveServer, VolcClient

Body = dict[str, Any]
TEXT = 10001
A, B, C = 31001, 31002, 31003


def send(group: Group, sender: int = A, content: str = "hi", **fields: Any) -> int:
    body = group.body(Sender=sender, MsgType=TEXT, Content=content, **fields)
    return int(ok(group.volc, "SendMessage", body)["MessageId"])


def walk(group: Group, *, reverse: bool, limit: int = 3) -> list[Body]:
    seen: list[Body] = []
    cursor = 0
    for _ in range(200):
        body = group.body(Cursor=cursor, Limit=limit, Reverse=1 if reverse else 0)
        page = ok(group.volc, "GetConversationMessages", body)
        seen += page["Messages"]
        if not page["HasMore"]:
            return seen
        cursor = page["NewCursor"]
    raise AssertionError("paging never ended")


def group_of_three(volc: VolcClient) -> Group:
    group = Group(volc)
    assert group.add(A, B, C) == []
    return group


def test_send_and_page_both_ways_by_index(volc: VolcClient) -> None:
    group = group_of_three(volc)
    sent = [send(group, content=f"m{i}") for i in range(7)]
    forward = walk(group, reverse=False)
    assert [m["MessageId"] for m in forward] == sent
    assert [m["IndexInConversation"] for m in forward] == list(range(1, 8))
    assert [m["MessageId"] for m in walk(group, reverse=True)] == sent[::-1]
    first = forward[0]
    assert first["Sender"] == A and first["SenderStr"] == str(A) and first["Status"] == 0
    assert first["MsgType"] == TEXT and first["Content"] == "m0" and first["Ext"] == {}
    assert first["AppId"] == volc.tenant.app_id and first["ConversationType"] == 2
    page = ok(volc, "GetConversationMessages", group.body(Cursor=3, Limit=2))
    assert [m["IndexInConversation"] for m in page["Messages"]] == [3, 4]
    assert (page["HasMore"], page["NewCursor"]) == (True, 5)
    back = ok(volc, "GetConversationMessages", group.body(Cursor=3, Limit=5, Reverse=1))
    assert [m["IndexInConversation"] for m in back["Messages"]] == [3, 2, 1]
    assert (back["HasMore"], back["NewCursor"]) == (False, 0)
    fails(volc, "GetConversationMessages", group.body(Cursor=0, Limit=0), "InvalidParam")


def test_client_msg_id_makes_a_send_idempotent_and_takes_no_index(volc: VolcClient) -> None:
    group = group_of_three(volc)
    first = send(group, ClientMsgId="c-1")
    assert send(group, sender=B, content="other", ClientMsgId="c-1") == first
    second = send(group)
    (found,) = ok(volc, "GetMessages", group.body(MessageIds=[first]))["Messages"]
    assert found["ClientMsgId"] == "c-1" and found["Content"] == "hi"
    indexes = [m["IndexInConversation"] for m in walk(group, reverse=False)]
    assert indexes == [1, 2]
    assert second != first


def test_who_may_send(volc: VolcClient) -> None:
    group = group_of_three(volc)
    body = group.body(Sender=39999, MsgType=TEXT, Content="x")
    fails(volc, "SendMessage", body, "ParticipantNotInConversation")
    infos = [{"ParticipantUserId": B, "BlockTime": 4_000_000_000}]
    ok(volc, "BatchModifyConversationParticipant",
       group.body(Operator=OWNER, ParticipantInfos=infos))  # fmt: skip
    fails(volc, "SendMessage", group.body(Sender=B, MsgType=TEXT, Content="x"), "InvalidParam")
    fails(volc, "SendMessage", group.body(Sender=A, MsgType=TEXT, Content="x", Priority=5),
          "InvalidParam")  # fmt: skip
    ref = {"ReferencedMessageId": 123, "Hint": "?"}
    fails(volc, "SendMessage", group.body(Sender=A, MsgType=TEXT, Content="x", RefMsgInfo=ref),
          "MessageNotFound")  # fmt: skip
    assert walk(group, reverse=False) == []


def test_recall_delete_modify_and_quotes(volc: VolcClient) -> None:
    group = group_of_three(volc)
    kept, recalled, gone, own = (send(group, content=f"m{i}") for i in range(4))
    quote = {"Hint": "[quote]"}
    quoting = [
        send(group, sender=B, RefMsgInfo={**quote, "ReferencedMessageId": target})
        for target in (kept, recalled, gone)
    ]
    fails(volc, "RecallMessage", group.body(MessageId=recalled, ParticipantUserId=B),
          "InvalidParam")  # fmt: skip
    recall = group.body(MessageId=recalled, ParticipantUserId=B, RecallRole=2)
    ok(volc, "RecallMessage", recall)
    ok(volc, "RecallMessage", recall)  # twice: no error
    ok(volc, "DeleteConversationMessage", group.body(MessageId=gone))
    ok(volc, "DeleteConversationMessage", group.body(MessageId=own, DeleteType=1))
    ok(volc, "ModifyMessage", group.body(MessageId=kept, Ext={"a": "1"}))
    ok(volc, "ModifyMessage", group.body(MessageId=kept, Ext={"b": "2"}, Content="edited"))
    fails(volc, "ModifyMessage", group.body(MessageId=gone, Content="x"), "MessageNotFound")
    fails(volc, "RecallMessage", group.body(MessageId=999, ParticipantUserId=A),
          "MessageNotFound")  # fmt: skip
    listed = walk(group, reverse=False)
    assert [m["MessageId"] for m in listed] == [kept, *quoting]
    assert listed[0]["Ext"] == {"a": "1", "b": "2"} and listed[0]["Content"] == "edited"
    statuses = [m["RefMsgInfo"]["Status"] for m in listed[1:]]
    assert statuses == [0, 3, 4]
    assert listed[1]["RefMsgInfo"] == {
        "ReferencedMessageId": kept, "Hint": "[quote]", "ReferencedMessageType": TEXT,
        "Status": 0,
    }  # fmt: skip
    got = ok(volc, "GetMessages", group.body(MessageIds=[gone, kept, recalled, 5]))["Messages"]
    assert [m["MessageId"] for m in got] == [kept]


def test_read_indexes_only_move_forward(volc: VolcClient) -> None:
    group = group_of_three(volc)
    for _ in range(3):
        send(group)
    ok(volc, "ModifyParticipantReadIndex", group.body(ParticipantUserId=A, ReadIndex=2))
    fails(volc, "ModifyParticipantReadIndex", group.body(ParticipantUserId=A, ReadIndex=2),
          "InvalidParam")  # fmt: skip
    fails(volc, "ModifyParticipantReadIndex", group.body(ParticipantUserId=39999, ReadIndex=1),
          "ParticipantNotInConversation")  # fmt: skip
    ok(volc, "ModifyParticipantReadIndex", group.body(ParticipantUserId=B, ReadIndex=3))
    answer = ok(volc, "GetParticipantReadIndex", group.body())
    assert answer == {
        "ReadIndexes": [
            {"ParticipantUserId": A, "ParticipantUserIdStr": str(A), "ReadIndex": 2},
            {"ParticipantUserId": B, "ParticipantUserIdStr": str(B), "ReadIndex": 3},
        ]
    }
    setting = ok(volc, "GetConversationSetting", group.body(ParticipantUserId=A))
    assert setting["ConversationSettingInfo"]["ReadIndex"] == 2


def _coze(server: LiveServer, engine: Engine, account: str, user: int) -> httpx.Client:
    token = admin.create_token(engine, account, user=str(user)).token
    return httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _coze_list(client: httpx.Client, conversation_id: int) -> list[Body]:
    seen: list[Body] = []
    after: str | None = None
    for _ in range(50):
        body = {"order": "asc", "limit": 2, "after_id": after}
        answer = client.post(
            "/v1/conversation/message/list",
            params={"conversation_id": str(conversation_id)},
            json=body,
        ).json()
        assert answer["code"] == 0, answer
        seen += answer["data"]
        if not answer["has_more"]:
            return seen
        after = answer["last_id"]
    raise AssertionError("paging never ended")


def test_one_store_each_member_sees_its_own_view_through_coze(
    volc: VolcClient, database_url: str
) -> None:
    group = group_of_three(volc)
    for_all = send(group, content="to all", Ext={"k": "v"})
    only_b = send(group, content="to B", VisibleUsers=[B])
    not_c = send(group, content="not C", InvisibleUsersStr=[str(C)])
    hidden_by_b = send(group, content="B deletes it")
    sender_only = send(group, content="sender only")
    ok(volc, "DeleteMessage", group.body(MessageId=hidden_by_b, ParticipantUserId=B))
    ok(volc, "DeleteConversationMessage", group.body(MessageId=sender_only, DeleteType=1))
    engine = create_database_engine(database_url, pool_size=1)
    clients = {u: _coze(volc.server, engine, volc.tenant.account, u) for u in (A, B, C)}
    try:
        created = clients[C].post(
            "/v1/conversation/message/create",
            params={"conversation_id": str(group.id)},
            json={"role": "user", "content": "from coze", "content_type": "text",
                  "meta_data": {"m": "1"}},
        ).json()  # fmt: skip
        assert created["code"] == 0, created
        from_coze = int(created["data"]["id"])
        views = {u: [int(m["id"]) for m in _coze_list(c, group.id)] for u, c in clients.items()}
    finally:
        for client in clients.values():
            client.close()
        engine.dispose()
    assert views[A] == [for_all, only_b, not_c, hidden_by_b, sender_only, from_coze]
    assert views[B] == [for_all, only_b, not_c, from_coze]
    assert views[C] == [for_all, hidden_by_b, from_coze]
    server_view = walk(group, reverse=False)
    assert [m["MessageId"] for m in server_view] == [for_all, only_b, not_c, hidden_by_b, from_coze]
    last = server_view[-1]
    assert (last["Sender"], last["MsgType"], last["Ext"], last["Content"]) == (
        C, TEXT, {"m": "1"}, "from coze",
    )  # fmt: skip
    assert last["IndexInConversation"] == 6
