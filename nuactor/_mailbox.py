"""An actor's mailbox: a bounded FIFO with one consumer and any number of producers.

A Trio memory channel would do, but it pays for generality (many receivers, clones, stats)
on every message; this is the cheaper special case the actor loop needs. Putting never yields
while there is room (the caller decides about checkpoints); a full mailbox makes ``put`` wait.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar, final

import trio

T = TypeVar("T")


@final
class Mailbox(Generic[T]):
    __slots__ = ("_capacity", "_closed", "_getter", "_items", "_putters")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a mailbox holds at least one message")
        self._items: deque[T] = deque()
        self._capacity = capacity
        self._getter: trio.lowlevel.Task | None = None
        self._putters = trio.lowlevel.ParkingLot()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put_nowait(self, item: T) -> None:
        """Append ``item``; :class:`trio.WouldBlock` if full, ``ClosedResourceError`` if closed."""
        if self._closed:
            raise trio.ClosedResourceError("the mailbox is closed")
        if len(self._items) >= self._capacity:
            raise trio.WouldBlock
        self._items.append(item)
        getter = self._getter
        if getter is not None:
            self._getter = None
            trio.lowlevel.reschedule(getter)

    async def put(self, item: T) -> None:
        """Append ``item``, waiting while the mailbox is full (backpressure)."""
        while True:
            try:
                self.put_nowait(item)
            except trio.WouldBlock:
                await self._putters.park()
            else:
                return

    def get_nowait(self) -> T:
        """The oldest item; :class:`trio.WouldBlock` if empty."""
        if not self._items:
            if self._closed:
                raise trio.EndOfChannel
            raise trio.WouldBlock
        item = self._items.popleft()
        if self._putters:
            self._putters.unpark()
        return item

    async def get(self) -> T:
        """The oldest item, waiting for one; :class:`trio.EndOfChannel` once closed and empty."""
        while not self._items:
            if self._closed:
                raise trio.EndOfChannel
            if self._getter is not None:
                raise trio.BusyResourceError("a mailbox has one consumer")
            self._getter = trio.lowlevel.current_task()

            def abort(_: object) -> trio.lowlevel.Abort:
                self._getter = None
                return trio.lowlevel.Abort.SUCCEEDED

            await trio.lowlevel.wait_task_rescheduled(abort)
        return self.get_nowait()

    def close(self) -> None:
        """Refuse further puts; the consumer drains what is left, then sees EndOfChannel."""
        self._closed = True
        getter, self._getter = self._getter, None
        if getter is not None:
            trio.lowlevel.reschedule(getter)
        self._putters.unpark_all()
