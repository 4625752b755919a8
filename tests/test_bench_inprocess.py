"""``benchmarks.inprocess`` drives every operation it offers with requests convhub accepts: a
refused request ends the run (SystemExit) instead of being timed."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from benchmarks import inprocess, prefill

from convhub.ids import NODE_BITS, SEQUENCE_BITS


@pytest.mark.parametrize("operation", inprocess.OPERATIONS)
def test_every_operation_is_answered_200_on_sqlite(operation: str) -> None:
    took = asyncio.run(inprocess._measure("sqlite", operation, requests=25, rounds=2))
    assert len(took) == 2 and all(t > 0 for t in took)


@pytest.mark.parametrize(
    ("operation", "spoiled"),
    [("batch-get", (b"AppId", b"AppID")), ("coze-message-list", (b"conversation_id=", b"x="))],
)
def test_a_refused_request_ends_the_run(
    monkeypatch: pytest.MonkeyPatch, operation: str, spoiled: tuple[bytes, bytes]
) -> None:
    real = inprocess._pool

    def broken(*args: object) -> list[bytes]:
        made = real(*args)  # type: ignore[arg-type]
        return [raw.replace(*spoiled, 1) for raw in made]

    monkeypatch.setattr(inprocess, "_pool", broken)
    with pytest.raises(SystemExit, match="failed"):
        asyncio.run(inprocess._measure("sqlite", operation, requests=5, rounds=1))


def test_single_chats_with_replays_are_answered_200_on_sqlite() -> None:
    took = asyncio.run(
        inprocess._measure("sqlite", "create-single", requests=25, rounds=2, replays=1.0)
    )
    assert len(took) == 2 and all(t > 0 for t in took)


def test_batch_get_over_a_prefilled_table_asks_for_the_prefilled_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--prefill``: every ID asked for is one the prefill wrote (minted by its node), none of
    the groups made through the API."""
    real = inprocess._pool
    asked: list[int] = []

    def spy(*args: object) -> list[bytes]:
        made = real(*args)  # type: ignore[arg-type]
        for raw in made:
            asked.extend(orjson.loads(raw.split(b"\r\n\r\n", 1)[1])["ConversationShortId"])
        return made

    monkeypatch.setattr(inprocess, "_pool", spy)
    took = asyncio.run(
        inprocess._measure("sqlite", "batch-get", requests=5, rounds=1, prefill_size=2_000)
    )
    assert took and len(asked) > 1_000
    nodes = {(i >> SEQUENCE_BITS) & ((1 << NODE_BITS) - 1) for i in asked}
    assert nodes == {prefill.PREFILL_NODE}
