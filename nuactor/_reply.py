"""Waiting for a reply: a one-shot slot a task parks on until the outcome arrives."""

from __future__ import annotations

from typing import final

import trio

from ._outcome import Outcome


@final
class ReplySlot:
    """Filled once by whoever produces the outcome; awaited once by the caller.

    Cheaper than a :class:`trio.Event` plus a field, which matters on the invoke round trip.
    """

    __slots__ = ("_task", "expected_did", "outcome", "timed_out")

    def __init__(self, expected_did: str = "") -> None:
        self._task: trio.lowlevel.Task | None = None
        self.outcome: Outcome | None = None
        self.timed_out = False
        #: For a remote invoke: only a reply signed by this DID may fill the slot.
        self.expected_did = expected_did

    def fill(self, outcome: Outcome) -> None:
        if self.outcome is not None:
            return
        self.outcome = outcome
        task, self._task = self._task, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def expire(self) -> None:
        """No outcome came in time: wake the caller, who raises its timeout."""
        if self.outcome is None:
            self.timed_out = True
            self.fill(Outcome.failure("InvokeTimeout", "no reply in time"))

    async def wait(self) -> Outcome:
        """The outcome; cancellable (the slot is then simply abandoned)."""
        if self.outcome is None:
            self._task = trio.lowlevel.current_task()

            def abort(_: object) -> trio.lowlevel.Abort:
                self._task = None
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        else:
            await trio.lowlevel.checkpoint()
        assert self.outcome is not None
        return self.outcome
