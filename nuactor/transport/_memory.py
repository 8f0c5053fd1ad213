"""The ``memory`` transport: many systems talking inside one process (tests, simulations).

Frames go through exactly the same envelope path as on the network transports; only the bytes'
journey is shorter. A :class:`MemoryNetwork` is the shared medium; each system gets a
:class:`MemoryTransport` on it, addressed ``/memory/<name>``.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import final

import trio

from ..errors import Unreachable
from ._base import Transport, TransportHost

__all__ = ["MemoryNetwork", "MemoryTransport"]


@final
class MemoryNetwork:
    """An in-process network. ``links`` (if given) restricts who neighbours whom for gossip;
    by default every system neighbours every other."""

    def __init__(
        self, *, queue_size: int = 1024, fanout: int | None = None, seed: int | None = None
    ) -> None:
        self.queue_size = queue_size
        self.fanout = fanout
        self._random = random.Random(seed)
        self._hosts: dict[str, MemoryTransport] = {}
        self._links: dict[str, set[str]] | None = None
        self._names = itertools.count()

    def link(self, a: str, b: str) -> None:
        """Make the systems ``a`` and ``b`` (DIDs) gossip neighbours (switches to explicit links)."""
        if self._links is None:
            self._links = {}
        self._links.setdefault(a, set()).add(b)
        self._links.setdefault(b, set()).add(a)

    def neighbours(self, did: str) -> list[str]:
        if self._links is None:
            return [other for other in self._hosts if other != did]
        return [other for other in self._links.get(did, ()) if other in self._hosts]

    def disconnect(self, did: str) -> None:
        """Take system ``did`` off the network, as if its machine died: sends to it fail with
        :class:`~nuactor.errors.Unreachable`, and what it sends goes nowhere."""
        host = self._hosts.pop(did, None)
        if host is not None:
            host._did = None

    def transport(self, name: str | None = None) -> MemoryTransport:
        """A transport on this network (one per system)."""
        return MemoryTransport(self, name or f"node{next(self._names)}")


@final
class MemoryTransport(Transport):
    def __init__(self, network: MemoryNetwork, name: str) -> None:
        self._network = network
        self.name = name
        self._did: str | None = None
        self._inbound_send, self._inbound = trio.open_memory_channel[tuple[bytes, str]](
            network.queue_size if network.queue_size > 0 else math.inf
        )

    @property
    def addresses(self) -> list[str]:
        return [f"/memory/{self.name}"]

    async def run(self, host: TransportHost, *, task_status: trio.TaskStatus[None]) -> None:
        did = host.did
        if did in self._network._hosts:
            raise RuntimeError(f"{did} is already on this memory network")
        self._did = did
        self._network._hosts[did] = self
        try:
            task_status.started()
            async for frame, sender in self._inbound:
                host.receive_frame(frame, session_did=sender)
        finally:
            self._network._hosts.pop(did, None)
            self._did = None

    def reaches(self, did: str) -> bool:
        return did in self._network._hosts

    async def send(self, did: str, frame: bytes) -> None:
        target = self._network._hosts.get(did)
        if target is None or self._did is None:
            raise Unreachable(f"{did} is not on this memory network")
        await target._inbound_send.send((frame, self._did))

    async def broadcast(self, frame: bytes, *, exclude: str | None = None) -> None:
        if self._did is None:
            return
        neighbours = [d for d in self._network.neighbours(self._did) if d != exclude]
        fanout = self._network.fanout
        if fanout is not None and len(neighbours) > fanout:
            neighbours = self._network._random.sample(neighbours, fanout)
        for did in neighbours:
            target = self._network._hosts.get(did)
            if target is not None:
                await target._inbound_send.send((frame, self._did))
