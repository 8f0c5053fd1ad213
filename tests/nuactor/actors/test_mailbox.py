"""The mailbox: FIFO, bounded, backpressure, close and cancellation."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from nuactor._mailbox import Mailbox


@given(st.lists(st.integers(), max_size=50), st.integers(min_value=1, max_value=60))
def test_fifo_and_capacity(items: list[int], capacity: int) -> None:
    box: Mailbox[int] = Mailbox(capacity)
    accepted = []
    for item in items:
        try:
            box.put_nowait(item)
            accepted.append(item)
        except trio.WouldBlock:
            assert len(box) == capacity
    assert accepted == items[:capacity]
    assert [box.get_nowait() for _ in range(len(box))] == accepted
    with pytest.raises(trio.WouldBlock):
        box.get_nowait()


async def test_get_waits_for_a_put() -> None:
    box: Mailbox[str] = Mailbox(2)
    got: list[str] = []

    async def consumer() -> None:
        got.append(await box.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        box.put_nowait("hello")
    assert got == ["hello"]


async def test_put_waits_while_full_and_resumes_in_order() -> None:
    box: Mailbox[int] = Mailbox(1)
    box.put_nowait(0)
    done: list[int] = []

    async def producer(n: int) -> None:
        await box.put(n)
        done.append(n)

    async with trio.open_nursery() as nursery:
        for n in (1, 2):
            nursery.start_soon(producer, n)
            await trio.testing.wait_all_tasks_blocked()
        assert done == []
        received = []
        for _ in range(3):
            received.append(await box.get())
            await trio.testing.wait_all_tasks_blocked()
    assert received == [0, 1, 2]
    assert done == [1, 2]


async def test_close_wakes_the_consumer_after_draining() -> None:
    box: Mailbox[int] = Mailbox(4)
    box.put_nowait(1)
    box.close()
    with pytest.raises(trio.ClosedResourceError):
        box.put_nowait(2)
    assert await box.get() == 1
    with pytest.raises(trio.EndOfChannel):
        await box.get()


async def test_close_wakes_a_waiting_consumer_and_producers() -> None:
    box: Mailbox[int] = Mailbox(1)
    box.put_nowait(1)
    results: list[str] = []

    async def blocked_put() -> None:
        try:
            await box.put(2)
        except trio.ClosedResourceError:
            results.append("put refused")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_put)
        await trio.testing.wait_all_tasks_blocked()
        box.close()
    assert results == ["put refused"]
    empty: Mailbox[int] = Mailbox(1)

    async def blocked_get() -> None:
        with pytest.raises(trio.EndOfChannel):
            await empty.get()
        results.append("get ended")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_get)
        await trio.testing.wait_all_tasks_blocked()
        empty.close()
    assert results[-1] == "get ended"


async def test_cancelled_waits_leave_the_mailbox_usable() -> None:
    box: Mailbox[int] = Mailbox(1)
    with trio.move_on_after(0.01):
        await box.get()
    box.put_nowait(1)
    with trio.move_on_after(0.01):
        await box.put(2)  # full: waits, then is cancelled
    assert box.get_nowait() == 1
    with pytest.raises(trio.WouldBlock):
        box.get_nowait()  # the cancelled put did not sneak in
    box.put_nowait(3)
    assert await box.get() == 3


async def test_one_consumer_only() -> None:
    box: Mailbox[int] = Mailbox(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.get)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await box.get()
        box.put_nowait(1)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Mailbox(0)
