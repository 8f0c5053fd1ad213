"""The peer table: every system this node knows of, how to reach it, and its live sessions.

A :class:`Peer` holds a DID's known addresses (most recently confirmed first, at most
``MAX_ADDRESSES``), its live links (sessions), the one link currently writing its outbox (the
*primary*: the newest that is not being retired), its dial back-off, RTT and last-seen time.
The table is bounded: to admit a new DID it evicts the longest-unseen peer that has no session,
is not a bootstrap peer and is not being dialled; if there is none, the new DID is ignored.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, final

import trio

from ._control import MAX_ADDRESSES
from ._multiaddr import Multiaddr
from ._outbox import Outbox

if TYPE_CHECKING:
    from ._link import Link

__all__ = ["Peer", "PeerRecord", "PeerTable", "backoff_delay"]


def backoff_delay(failures: int, initial: float, cap: float) -> float:
    """Capped exponential back-off after ``failures`` consecutive failures, with jitter
    (75-100 % of the nominal delay, so the cap is never exceeded)."""
    nominal = min(cap, initial * 2.0 ** min(max(failures - 1, 0), 62))
    return nominal * random.uniform(0.75, 1.0)


@final
@dataclass(frozen=True, slots=True)
class PeerRecord:
    """A snapshot of one peer, for display and for the node's ``/dms/node/peers/*``.

    ``rtt`` is the last measured round-trip time in seconds; ``last_seen`` the Unix time of the
    last message received from the peer (``None``: never).
    """

    did: str
    addresses: tuple[str, ...]
    connected: bool
    rtt: float | None
    last_seen: float | None


@final
class Peer:
    """What this node knows about one other system (internal to the network layer)."""

    __slots__ = (
        "_changed",
        "addresses",
        "bootstrap",
        "dialing",
        "did",
        "failures",
        "last_seen",
        "links",
        "next_dial",
        "outbox",
        "primary",
        "rtt",
        "sticky",
    )

    def __init__(self, did: str, queue_size: int) -> None:
        self.did = did
        self.addresses: list[Multiaddr] = []
        self.links: list[Link] = []
        self.primary: Link | None = None
        self.outbox = Outbox(queue_size)
        #: Configured as a bootstrap peer: redialled for ever.
        self.bootstrap = False
        #: Had a session with this node: redialled after a drop (up to ``max_redials`` failures).
        self.sticky = False
        self.failures = 0
        self.next_dial = -float("inf")
        self.dialing: trio.Event | None = None
        self.rtt: float | None = None
        self.last_seen: float | None = None  # trio time
        self._changed = trio.Event()

    @property
    def connected(self) -> bool:
        return bool(self.links)

    @property
    def dialable(self) -> bool:
        return bool(self.addresses)

    def add_addresses(self, addresses: tuple[Multiaddr, ...], *, confirmed: bool) -> None:
        """Learn addresses: ``confirmed`` ones (dialled successfully) go first, others (the
        peer's own ``hello``, peer exchange) last; at most ``MAX_ADDRESSES`` are kept."""
        known = self.addresses
        for address in reversed(addresses) if confirmed else addresses:
            address = address.with_did(None)
            if address in known:
                if not confirmed:
                    continue
                known.remove(address)
            if confirmed:
                known.insert(0, address)
            else:
                known.append(address)
        del known[MAX_ADDRESSES:]

    def forget_address(self, address: Multiaddr) -> None:
        address = address.with_did(None)
        if address in self.addresses:
            self.addresses.remove(address)

    def elect(self) -> None:
        """Make the newest link that is neither retiring nor closed the primary (the outbox's
        writer)."""
        primary = None
        for link in reversed(self.links):
            if not link.retiring and not link.closed:
                primary = link
                break
        if primary is not self.primary:
            if self.primary is not None:
                self.primary.outbox = None
            self.primary = primary
            if primary is not None:
                primary.outbox = self.outbox
                primary.wake()

    def notify(self) -> None:
        """Wake every task waiting in :meth:`changed` (a link came or went, a dial ended)."""
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        await self._changed.wait()

    def record(self) -> PeerRecord:
        last_seen = None
        if self.last_seen is not None:
            last_seen = time.time() - max(0.0, trio.current_time() - self.last_seen)
        return PeerRecord(
            did=self.did,
            addresses=tuple(str(address) for address in self.addresses),
            connected=self.connected,
            rtt=self.rtt,
            last_seen=last_seen,
        )


@final
class PeerTable:
    """The peers by DID, at most ``max_peers`` of them."""

    __slots__ = ("_max", "_peers", "_queue_size")

    def __init__(self, *, max_peers: int, queue_size: int) -> None:
        self._peers: dict[str, Peer] = {}
        self._max = max_peers
        self._queue_size = queue_size

    def __len__(self) -> int:
        return len(self._peers)

    def __iter__(self) -> Iterator[Peer]:
        return iter(list(self._peers.values()))

    def get(self, did: str) -> Peer | None:
        return self._peers.get(did)

    def ensure(self, did: str) -> Peer | None:
        """The peer ``did``, added if new; ``None`` if the table is full of peers it must keep."""
        peer = self._peers.get(did)
        if peer is not None:
            return peer
        if len(self._peers) >= self._max and not self._evict():
            return None
        peer = self._peers[did] = Peer(did, self._queue_size)
        return peer

    def forget(self, did: str) -> None:
        """Drop a peer (one that is only hearsay and never answered)."""
        peer = self._peers.pop(did, None)
        if peer is not None:
            peer.notify()

    def _evict(self) -> bool:
        candidates = [
            peer
            for peer in self._peers.values()
            if not peer.links and not peer.bootstrap and peer.dialing is None and not peer.outbox
        ]
        if not candidates:
            return False
        oldest = min(
            candidates, key=lambda p: -float("inf") if p.last_seen is None else p.last_seen
        )
        del self._peers[oldest.did]
        oldest.notify()
        return True
