"""Bid collection: ask providers for bids on some nodes and gather what comes back by a deadline.

Two ways to ask, chosen by ``orchestrator.bid_requests``:

- ``direct`` (the default): invoke ``/dms/deployment/request`` on a random sample of at most
  ``bid_fanout`` known peers (pinned peers always included). The cost of a placement is then
  bounded whatever the size of the network, and sampling a few providers at random and taking the
  best spreads load nearly as well as asking them all (the "power of d choices"). A round that
  does not place everything asks peers not asked yet.
- ``broadcast``: publish the request on ``/nunet/deployment`` (NuNet's way); every provider the
  gossip reaches may answer, by sending ``/dms/deployment/bid``. Collection ends at the deadline
  or once every node has ``bid_quorum`` bids.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, final

import trio

from nuactor import ActorSystem, Handle
from nuactor.errors import NuactorError

from ..deployment import Bid, BidRequest, NodeRequest, Refusal
from ..errors import DmsError

__all__ = ["BidRound", "ask_directly", "candidates_of"]

log = logging.getLogger("dmsnode.orchestrator")


@final
@dataclass
class BidRound:
    """One call for bids: the request, and the bids and refusals gathered for it."""

    request: BidRequest
    bids: list[Bid] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    asked: set[str] = field(default_factory=set)
    arrived: trio.Event = field(default_factory=trio.Event)
    #: Whether every candidate has now been asked (another round at once would ask again).
    exhausted: bool = True

    def add(self, answer: Any, provider: str) -> None:
        """Take a provider's answer (``{bids, refusals}``); anything not about this request, or
        not from this provider, is refused as a refusal with the reason (never dropped)."""
        if not isinstance(answer, dict):
            self.refusals.append(Refusal("*", provider, "answered something that is not a map"))
            return
        for i, data in enumerate(answer.get("bids") or []):
            try:
                bid = Bid.from_dict(data, where=f"bids[{i}]")
            except DmsError as exc:
                self.refusals.append(Refusal("*", provider, f"sent an unreadable bid: {exc}"))
                continue
            if bid.provider != provider:
                self.refusals.append(
                    Refusal(bid.node, provider, f"sent a bid in the name of {bid.provider}")
                )
            elif bid.deployment != self.request.deployment or bid.nonce != self.request.nonce:
                self.refusals.append(Refusal(bid.node, provider, "sent a bid for another request"))
            else:
                self.bids.append(bid)
        for i, data in enumerate(answer.get("refusals") or []):
            try:
                refusal = Refusal.from_dict(data, where=f"refusals[{i}]")
            except DmsError as exc:
                refusal = Refusal("*", provider, f"sent an unreadable refusal: {exc}")
            self.refusals.append(Refusal(refusal.node, provider, refusal.reason))
        self.arrived.set()
        self.arrived = trio.Event()

    def quorum(self, nodes: Sequence[NodeRequest], size: int) -> bool:
        """Whether every node has at least ``size`` bids."""
        counts: dict[str, int] = {}
        for bid in self.bids:
            counts[bid.node] = counts.get(bid.node, 0) + 1
        return all(counts.get(n.node, 0) >= size for n in nodes)


async def ask_directly(
    system: ActorSystem,
    bids: BidRound,
    candidates: Sequence[str],
    *,
    fanout: int,
    timeout: float,
    rng: random.Random,
    avoid: Collection[str] = (),
) -> None:
    """Invoke the bid request on a sample of ``candidates`` (pinned peers first, then peers not
    in ``avoid``), each answer or failure recorded in ``bids``; returns when all have
    answered or ``timeout`` passed (the silent ones are recorded as such)."""
    pinned = {n.peer for n in bids.request.nodes if n.peer}
    fresh = [c for c in candidates if c not in avoid and c not in pinned]
    bids.exhausted = len(fresh) <= fanout
    if len(fresh) < fanout:  # everyone was asked: ask again rather than nobody
        fresh += [c for c in candidates if c in avoid and c not in pinned and c not in fresh]
    chosen = sorted(pinned) + rng.sample(fresh, min(fanout, len(fresh)))
    body = bids.request.to_dict()
    answered: set[str] = set()

    async def ask(did: str) -> None:
        try:
            answer = await system.invoke(
                Handle(did, "root"), "/dms/deployment/request", body, timeout=timeout
            )
        except (NuactorError, OSError, DmsError) as exc:
            bids.refusals.append(Refusal("*", did, f"no bid: {type(exc).__name__}: {exc}"))
        else:
            bids.add(answer, did)
        answered.add(did)

    bids.asked.update(chosen)
    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            for did in chosen:
                nursery.start_soon(ask, did)
    for did in chosen:
        if did not in answered:
            bids.refusals.append(Refusal("*", did, f"no answer within {timeout:g} s"))


def candidates_of(peers: Callable[[], Sequence[tuple[str, bool]]]) -> list[str]:
    """The peers to ask for bids: connected ones first, then those only known."""
    listed = list(peers())
    return [did for did, up in listed if up] + [did for did, up in listed if not up]
