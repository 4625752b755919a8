"""The wire form of a kept conversation is the wire form of the conversation, byte for byte."""

from __future__ import annotations

import dataclasses

import orjson

from convhub.dialects.volc import codec
from convhub.domain.models import Conversation, ConversationType


def _conversation(name: str, other: str | None = None) -> Conversation:
    return Conversation(
        id=7_000_000_000_000_000_001, app_id=1, inbox_type=0, type=ConversationType.GROUP,
        owner="10001", creator="10001", other=other, create_time=1, modify_time=2, name=name,
        member_count=3, ext={"k": "v"},
    )  # fmt: skip


def test_a_kept_conversation_encodes_exactly_as_any_other() -> None:
    for conversation in (_conversation("a"), _conversation("b", other="alice")):
        for member_count in (False, True):
            kept = codec.kept_conversation_infos([conversation], member_count=member_count)
            again = codec.kept_conversation_infos([conversation], member_count=member_count)
            plain = [codec.conversation_info(conversation, member_count=member_count)]
            assert orjson.dumps(kept) == orjson.dumps(plain) == orjson.dumps(again)


def test_a_newer_read_of_the_same_conversation_is_encoded_afresh() -> None:
    """A changed conversation comes back from the store as a new object with the same ID."""
    first, renamed = _conversation("before"), _conversation("after")

    def name(conversation: Conversation) -> str:
        encoded = orjson.dumps(codec.kept_conversation_infos([conversation], member_count=False))
        return str(orjson.loads(encoded)[0]["Name"])

    assert name(first) == "before"
    assert name(renamed) == "after"
    assert name(first) == "before"


def test_a_page_keeps_its_order_and_mixes_kept_and_new_encodings() -> None:
    a, b = _conversation("a"), _conversation("b", other="alice")
    codec.kept_conversation_infos([b], member_count=True)  # b is kept, a is not yet
    page = codec.kept_conversation_infos([a, b, a], member_count=True)
    plain = [codec.conversation_info(c, member_count=True) for c in (a, b, a)]
    assert orjson.dumps(page) == orjson.dumps(plain)


def test_a_copy_made_with_replace_is_encoded_afresh_and_equals_an_unencoded_one() -> None:
    """The encoded form rides on the object (``Conversation.encoded``): a changed copy must not
    carry it over, and it is no part of what the conversation is."""
    first = _conversation("before")
    codec.kept_conversation_infos([first], member_count=True)
    renamed = dataclasses.replace(first, name="after")
    page = orjson.loads(orjson.dumps(codec.kept_conversation_infos([renamed], member_count=True)))
    assert page[0]["Name"] == "after"
    assert first == _conversation("before")
