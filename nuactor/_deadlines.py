"""Invoke timeouts, served by one task for the whole system.

A :func:`trio.move_on_after` per invoke costs more than the rest of a local round trip (it
registers a deadline with Trio's run loop each time). Instead, each waiting reply slot is
pushed on a heap here, and one task sleeps until the earliest deadline and expires what is due.
Slots answered in time are dropped from the heap lazily, with a compaction when more than half
of it is answered, so memory stays proportional to the invokes actually waiting.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import final

import trio

from ._reply import ReplySlot

_COMPACT_MIN = 1024


@final
class Deadlines:
    """Deadlines of waiting reply slots; :meth:`serve` expires them when due."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, ReplySlot]] = []
        self._order = itertools.count()
        self._scope: trio.CancelScope | None = None
        self._answered = 0

    def watch(self, slot: ReplySlot, timeout: float) -> None:
        """Expire ``slot`` if it is still unanswered ``timeout`` seconds from now."""
        if timeout == math.inf:
            return
        deadline = trio.current_time() + timeout
        heapq.heappush(self._heap, (deadline, next(self._order), slot))
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def answered(self) -> None:
        """A watched slot got its outcome in time (lets the heap be compacted)."""
        self._answered += 1
        heap = self._heap
        if self._answered * 2 > len(heap) >= _COMPACT_MIN:
            self._heap = [entry for entry in heap if entry[2].outcome is None]
            heapq.heapify(self._heap)
            self._answered = 0

    def __len__(self) -> int:
        return len(self._heap)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            with trio.CancelScope(deadline=self._heap[0][0] if self._heap else math.inf) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            heap = self._heap
            while heap and heap[0][0] <= now:
                _, _, slot = heapq.heappop(heap)
                if slot.outcome is None:
                    slot.expire()
                else:
                    self._answered = max(0, self._answered - 1)
