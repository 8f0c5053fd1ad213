"""The bounded queue of frames waiting to be written to one peer.

One per peer, not per session: when a duplicate session is retired or a dropped one replaced,
the frames still queued move on to the next session untouched. A sender waits for room until
its deadline (backpressure with a bound); gossip uses :meth:`Outbox.put_nowait` and is dropped
when the queue is full.
"""

from __future__ import annotations

from collections import deque
from typing import final

import trio

__all__ = ["Outbox"]


@final
class Outbox:
    """A FIFO of at most ``capacity`` frames."""

    __slots__ = ("_capacity", "_frames", "_space")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("an outbox holds at least one frame")
        self._capacity = capacity
        self._frames: deque[bytes] = deque()
        self._space = trio.lowlevel.ParkingLot()

    def __len__(self) -> int:
        return len(self._frames)

    def put_nowait(self, frame: bytes) -> bool:
        """Queue ``frame`` if there is room; ``False`` if the queue is full."""
        if len(self._frames) >= self._capacity:
            return False
        self._frames.append(frame)
        return True

    async def put(self, frame: bytes, deadline: float) -> bool:
        """Queue ``frame``, waiting for room until ``deadline`` (trio time); ``False`` if none."""
        while len(self._frames) >= self._capacity:
            if trio.current_time() >= deadline:
                return False
            with trio.move_on_at(deadline):
                await self._space.park()
        self._frames.append(frame)
        return True

    def take(self, max_bytes: int, per_frame: int = 0) -> list[bytes]:
        """The oldest frames, as many as fit in ``max_bytes`` counting ``per_frame`` extra bytes
        each (always at least one frame, if any is queued)."""
        frames = self._frames
        if not frames:
            return []
        batch = [frames.popleft()]
        size = len(batch[0]) + per_frame
        while frames and size + len(frames[0]) + per_frame <= max_bytes:
            frame = frames.popleft()
            size += len(frame) + per_frame
            batch.append(frame)
        if self._space:
            self._space.unpark(count=len(batch))
        return batch

    def clear(self) -> int:
        """Drop every queued frame (the peer is gone); returns how many."""
        dropped = len(self._frames)
        self._frames.clear()
        if self._space:
            self._space.unpark_all()
        return dropped
