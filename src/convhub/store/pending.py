"""The future a queued write's request waits on.

Settled as an asyncio future is, a future wakes the task waiting for it at the event loop's next
turn: its callbacks go to the back of the loop's queue. The writer's answers already arrive in a
callback of their own (``call_soon_threadsafe``), so each answered request waited a second turn
before it could send its answer; and a turn of a loop busy with reads runs every request ready
at its start (beside BatchGet(100)s, about 15 ms). ``Pending.settle_now`` resumes the waiting
task in the turn that delivers the answer.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Waiter = tuple[Callable[[Any], object], contextvars.Context]


class Pending(asyncio.Future[T]):
    """A queued write's answer.

    Cancelling the request that waits for it does not cancel it: the writer commits or refuses
    the write all the same (shutdown drains the queue), so the request hears what became of it.
    Cheaper than ``asyncio.shield``: no second future.

    The callbacks added before it is settled (the waiting task's wake-up) are kept here rather
    than in the future, so that ``settle_now`` can run them at once; ``set_result`` and
    ``set_exception`` schedule them for the next turn, as a future does.
    """

    _waiters: list[_Waiter] | None = None

    def cancel(self, msg: Any | None = None) -> bool:
        return False

    def add_done_callback(
        self, fn: Callable[[Any], object], *, context: contextvars.Context | None = None
    ) -> None:
        if self.done():
            super().add_done_callback(fn, context=context)
            return
        if self._waiters is None:
            self._waiters = []
        self._waiters.append((fn, contextvars.copy_context() if context is None else context))

    def remove_done_callback(self, fn: Callable[[Any], object]) -> int:
        removed = super().remove_done_callback(fn)
        if self._waiters:
            kept = [waiter for waiter in self._waiters if waiter[0] != fn]
            removed += len(self._waiters) - len(kept)
            self._waiters = kept
        return removed

    def set_result(self, result: T) -> None:
        super().set_result(result)
        self._wake(now=False)

    def set_exception(self, exception: type | BaseException) -> None:
        super().set_exception(exception)
        self._wake(now=False)

    def settle_now(self, ok: bool, value: Any) -> None:
        """Settle with ``value`` (a result if ``ok``, else an exception to raise) and resume the
        waiting task now. Only from a plain callback of the loop: a task cannot be resumed while
        another runs, so from inside one the task is resumed at the next turn instead."""
        if ok:
            super().set_result(value)
        else:
            super().set_exception(value)
        loop = self.get_loop()
        self._wake(now=asyncio.current_task(loop) is None)

    def _wake(self, *, now: bool) -> None:
        waiters, self._waiters = self._waiters, None
        if not waiters:
            return
        loop = self.get_loop()
        for fn, context in waiters:
            if not now:
                loop.call_soon(fn, self, context=context)
                continue
            try:
                context.run(fn, self)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # as the loop treats a callback that raises
                loop.call_exception_handler(
                    {"message": "a write's waiter failed", "exception": exc, "future": self}
                )
