"""The future a queued write's request waits on: settled by the writer's answer, it resumes the
waiting task in that same turn of the event loop; settled otherwise, at the next, as any future."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from convhub.store.pending import Pending

T = TypeVar("T")


def _run(scenario: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` without its last step: a task left waiting on a future that refuses to be
    cancelled (a broken build's) would make that wait forever, where this fails the test."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(scenario, timeout=10))
    finally:
        loop.close()


def _waiting(loop: asyncio.AbstractEventLoop) -> tuple[Pending[Any], list[str], asyncio.Task[Any]]:
    future: Pending[Any] = Pending(loop=loop)
    resumed: list[str] = []

    async def request() -> Any:
        try:
            value = await future
        except ValueError as error:
            resumed.append(f"raised {error}")
            raise
        resumed.append(f"got {value}")
        return value

    return future, resumed, loop.create_task(request())


def test_settled_now_the_waiting_task_runs_before_the_callback_returns() -> None:
    async def scenario() -> tuple[list[str], list[str], Any]:
        loop = asyncio.get_running_loop()
        future, resumed, task = _waiting(loop)
        await asyncio.sleep(0)  # the task waits on the future
        seen: list[str] = []

        def answer() -> None:  # a plain callback, as the writer's answers arrive
            future.settle_now(True, 7)
            seen.extend(resumed)

        loop.call_soon(answer)
        return seen, resumed, await task

    seen, resumed, value = _run(scenario())
    assert seen == ["got 7"]  # resumed inside the callback, not a turn later
    assert resumed == ["got 7"] and value == 7


def test_an_exception_settled_now_is_raised_in_the_waiting_task_at_once() -> None:
    async def scenario() -> tuple[list[str], BaseException | None]:
        loop = asyncio.get_running_loop()
        future, resumed, task = _waiting(loop)
        await asyncio.sleep(0)
        seen: list[str] = []

        def answer() -> None:
            future.settle_now(False, ValueError("refused"))
            seen.extend(resumed)

        loop.call_soon(answer)
        await asyncio.wait([task])
        return seen, task.exception()

    seen, error = _run(scenario())
    assert seen == ["raised refused"]
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("how", ["set_result", "set_exception"])
def test_settled_as_a_future_the_waiting_task_runs_at_the_next_turn(how: str) -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        future, resumed, task = _waiting(loop)
        await asyncio.sleep(0)
        seen: list[str] = []

        def answer() -> None:
            if how == "set_result":
                future.set_result(7)
            else:
                future.set_exception(ValueError("overloaded"))
            seen.extend(resumed)

        loop.call_soon(answer)
        await asyncio.wait([task])
        return seen, resumed

    seen, resumed = _run(scenario())
    assert seen == []
    assert resumed == (["got 7"] if how == "set_result" else ["raised overloaded"])


def test_settled_now_from_inside_a_task_the_waiting_task_runs_at_the_next_turn() -> None:
    """A task cannot be resumed while another runs: the waiter is scheduled instead, and runs."""

    async def scenario() -> tuple[list[str], Any]:
        loop = asyncio.get_running_loop()
        future, resumed, task = _waiting(loop)
        await asyncio.sleep(0)
        future.settle_now(True, 3)
        seen = list(resumed)
        return seen, await asyncio.wait_for(task, timeout=5)

    seen, value = _run(scenario())
    assert seen == [] and value == 3


def test_a_cancelled_request_is_resumed_with_the_answer_all_the_same() -> None:
    """Cancelling does not cancel the future: the request wakes once answered, and can read it."""

    async def scenario() -> tuple[bool, Any]:
        loop = asyncio.get_running_loop()
        future: Pending[Any] = Pending(loop=loop)

        async def request() -> Any:
            try:
                return await future
            except asyncio.CancelledError:
                return ("answered", future.result())

        task = loop.create_task(request())
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.sleep(0.01)
        still_waiting = not task.done() and not future.cancelled()
        loop.call_soon(future.settle_now, True, 9)
        return still_waiting, await task

    still_waiting, value = _run(scenario())
    assert still_waiting
    assert value == ("answered", 9)


def test_a_callback_removed_before_the_answer_is_not_called() -> None:
    async def scenario() -> tuple[int, list[str]]:
        loop = asyncio.get_running_loop()
        future: Pending[Any] = Pending(loop=loop)
        calls: list[str] = []

        def removed(_future: Any) -> None:
            calls.append("removed")

        def kept(_future: Any) -> None:
            calls.append("kept")

        future.add_done_callback(removed)
        future.add_done_callback(kept)
        count = future.remove_done_callback(removed)
        loop.call_soon(future.settle_now, True, 1)
        await asyncio.sleep(0.01)
        return count, calls

    count, calls = _run(scenario())
    assert count == 1
    assert calls == ["kept"]


def test_a_callback_added_once_settled_runs_at_the_next_turn() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        future: Pending[Any] = Pending(loop=loop)
        future.set_result(1)
        calls: list[str] = []
        future.add_done_callback(lambda _f: calls.append("late"))
        assert calls == []
        await asyncio.sleep(0)
        return calls

    assert _run(scenario()) == ["late"]
