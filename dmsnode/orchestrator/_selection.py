"""Choosing which provider hosts each node of a deployment, among the bids received.

Pure functions: no I/O, no clock (``now`` is passed in), no global randomness (ties are broken
by the ``random.Random`` passed in). :func:`select` filters the bids (:func:`bid_problem`),
scores the rest (:func:`score`) and searches for a placement that meets the constraints between
nodes; it accounts for every bid it received: each is either placed or rejected with a reason.

A node slot is a :class:`~dmsnode.deployment.NodeRequest`'s ``node``: the ensemble node's name,
with ``#n`` for its n-th redundant copy (``web``, ``web#1``). Every slot goes to a provider of
its own, as in NuNet: an ensemble's nodes are separate machines (a node is where its allocations
share a host), and copies of one node are there to survive the loss of one.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, final

from ..deployment import Bid, NodeRequest, location_problem
from ..ensemble import EdgeConstraint, Location, LocationConstraints
from ..resources import Resources

__all__ = ["Rejection", "Selection", "bid_problem", "estimate_rtt", "score", "select"]

#: Weights of the parts of a score (they add up to 1).
FIT_WEIGHT: Final = 0.5
LOCATION_WEIGHT: Final = 0.2
RTT_WEIGHT: Final = 0.3
#: A round trip this long scores half of a zero one.
RTT_SCALE_MS: Final = 50.0
#: Scores closer than this are a tie (float noise must not decide between providers).
_TIE_DIGITS: Final = 9
_NO_RTTS: Final[Mapping[str, float]] = MappingProxyType({})


@final
@dataclass(frozen=True, slots=True)
class Rejection:
    """A bid that was not chosen, and why (for the deployment's record and its owner)."""

    provider: str
    node: str
    reason: str


@final
@dataclass(frozen=True, slots=True)
class Selection:
    """What :func:`select` chose: the bid for each placed slot, every other bid with the reason
    it was not chosen, and each slot left without a bid with the reason why."""

    placement: Mapping[str, Bid]
    rejections: tuple[Rejection, ...]
    unplaced: Mapping[str, str]

    @property
    def complete(self) -> bool:
        """Whether every slot asked for is placed."""
        return not self.unplaced


# --- one bid -------------------------------------------------------------------------------------


def bid_problem(
    node: NodeRequest, bid: Bid, *, exclude: Collection[str] = (), now: float
) -> str | None:
    """Why ``bid`` may not host ``node`` on its own merits (``None``: it may), in words a person
    can act on; whether it fits with the rest of a placement is :func:`select`'s business."""
    problem = _problem(node, bid, exclude, now)
    if problem is None and not bid.verify():
        return _BAD_SIGNATURE[1]
    return None if problem is None else problem[1]


def score(node: NodeRequest, bid: Bid, *, rtt_ms: float | None) -> float:
    """How good a host the bid's provider is for ``node``, in [0, 1] (higher is better).

    * Fit (weight 0.5): best fit, scored by how little of the provider's free cores, RAM and
      disk the node leaves over (as a fraction of each, averaged). Filling small holes first
      keeps the large ones for large requests, which would otherwise find no provider.
    * Location (weight 0.2): 1.0 in the first place the node accepts, less in each later one;
      0.5 when the node names no place or the provider states none.
    * Round trip from the orchestrator, ``rtt_ms`` (weight 0.3): 1 / (1 + rtt / 50 ms); 0.5 when
      unknown. Nearby providers answer and deploy sooner.
    """
    return (
        FIT_WEIGHT * _fit(node.resources, bid.free)
        + LOCATION_WEIGHT * _location_score(node.location, bid.location)
        + RTT_WEIGHT * _rtt_score(rtt_ms)
    )


def estimate_rtt(a: Bid, b: Bid, rtt_ms: Mapping[str, float]) -> float | None:
    """The round trip (ms) between the providers of two bids, as far as it can be shown
    (``None``: unknown).

    0 for one provider; else what either provider measured to the other (the smaller if both
    did); else an upper bound through the orchestrator, whose own measurements are ``rtt_ms``:
    by the triangle inequality, a to b is at most a to orchestrator plus orchestrator to b.
    A negative figure is nonsense and ignored."""
    if a.provider == b.provider:
        return 0.0
    there, back = a.rtt_ms.get(b.provider, -1.0), b.rtt_ms.get(a.provider, -1.0)
    if there >= 0 or back >= 0:
        return min(there, back) if there >= 0 and back >= 0 else max(there, back)
    to_a, to_b = rtt_ms.get(a.provider), rtt_ms.get(b.provider)
    if to_a is None or to_b is None or to_a < 0 or to_b < 0:
        return None
    return to_a + to_b


# (category, reason): the category sums up many bids in a slot's ``unplaced`` reason.
_Problem = tuple[str, str]
_BAD_SIGNATURE: Final = ("bad signature", "the bid's signature is not its provider's")


def _problem(node: NodeRequest, bid: Bid, exclude: Collection[str], now: float) -> _Problem | None:
    """:func:`bid_problem` but for the signature (the one costly check), with a category."""
    if bid.node != node.node:
        return "for another node", f"the bid is for node {bid.node}, not {node.node}"
    if bid.expires <= now:
        return "expired", f"the bid expired {now - bid.expires:.1f} s ago"
    if bid.provider in exclude:
        return "excluded", f"provider {bid.provider} is excluded from this deployment"
    if node.peer and bid.provider != node.peer:
        return "not the pinned peer", f"node {node.node} must run on peer {node.peer}"
    place = location_problem(node.location, bid.location)
    if place is not None:
        return "location not accepted", place
    short = node.resources.exceeds(bid.free)
    if short is not None:
        return "not enough room", f"the node needs {short}"
    offered = len(set(bid.gpus))
    if offered < len(node.gpus):
        return "too few GPUs", f"the node needs {len(node.gpus)} GPUs, the bid offers {offered}"
    return None


def _fit(need: Resources, free: Resources) -> float:
    left = [
        min(1.0, max(0.0, (have - want) / have))
        for want, have in (
            (need.cpu_cores, free.cpu_cores),
            (need.ram, free.ram),
            (need.disk, free.disk),
        )
        if have > 0
    ]
    return 1.0 - sum(left) / len(left) if left else 1.0


def _location_score(constraints: LocationConstraints, place: Location | None) -> float:
    if not constraints.accept or place is None:
        return 0.5
    for rank, area in enumerate(constraints.accept):
        if location_problem(LocationConstraints(accept=(area,)), place) is None:
            return 1.0 - 0.5 * rank / len(constraints.accept)
    return 0.0


def _rtt_score(rtt_ms: float | None) -> float:
    if rtt_ms is None:
        return 0.5
    return 1.0 / (1.0 + max(0.0, rtt_ms) / RTT_SCALE_MS)


# --- the search ----------------------------------------------------------------------------------


@final
@dataclass(slots=True)
class _Candidate:
    """A bid that passed the cheap filters, the one kept from its provider for its slot."""

    slot: int
    index: int  # in the bids received
    bid: Bid
    score: float
    order: tuple[float, float]  # sort key: score first, then the random tie-break
    gpus: frozenset[str]
    verified: bool | None = None  # the signature, checked when first needed


@final
@dataclass(frozen=True, slots=True)
class _Edge:
    other: int  # the slot at the other end
    rtt: int
    label: str


def select(
    nodes: Sequence[NodeRequest],
    bids: Iterable[Bid],
    *,
    now: float,
    edges: Sequence[EdgeConstraint] = (),
    exclude: Collection[str] = (),
    rtt_ms: Mapping[str, float] = _NO_RTTS,
    rng: random.Random | None = None,
    budget: int = 10_000,
) -> Selection:
    """Choose one bid for each slot of ``nodes``, or say why none could be chosen.

    A bid must pass :func:`bid_problem`; of several from one provider for one slot, the
    latest-expiring is kept. Then the chosen bids must fit together:

    * every slot goes to a distinct provider (copies of one node, ``web`` and ``web#1``, and
      different nodes alike);
    * each edge constraint (``edges``, on ensemble node names, between every copy of one node and
      every copy of the other) holds by :func:`estimate_rtt`: a round trip that cannot be shown
      to be short enough breaks it. Only the round trip is checked: bandwidth (``bw``) is not
      measured, so it is ignored. Constraints naming nodes not in ``nodes`` are ignored.

    The search is a constraint satisfaction: slots with the fewest acceptable bids first, each
    trying its bids from the best score down, backtracking on a conflict; a slot may be left
    unplaced to place the others. It stops at the first complete placement, or after ``budget``
    bids tried, with the placement that places the most slots found so far (then topped up with
    any bid that still fits).

    Equal scores are ordered by ``rng`` (default ``Random(0)``), so that many orchestrators
    reading the same bids do not all pick the same provider; the same seed and bids give the
    same selection. Signatures (the costly check) are verified only when a placement would
    become the best found: a bid passed over for another is rejected for that, whether or not
    it was signed. ``ValueError`` if ``nodes`` names a slot twice (a bug of the caller).
    """
    rng = random.Random(0) if rng is None else rng
    received = list(bids)
    slot_of = {node.node: i for i, node in enumerate(nodes)}
    if len(slot_of) != len(nodes):
        raise ValueError("a slot is requested twice")
    bases = [node.node.partition("#")[0] for node in nodes]

    # The cheap filters; then one bid per provider and slot, the latest-expiring.
    reasons: list[_Problem | None] = [None] * len(received)
    groups: dict[tuple[int, str], list[int]] = {}
    for i, bid in enumerate(received):
        slot = slot_of.get(bid.node)
        if slot is None:
            reasons[i] = ("for another node", f"no node {bid.node} was asked for")
            continue
        reasons[i] = _problem(nodes[slot], bid, exclude, now)
        if reasons[i] is None:
            groups.setdefault((slot, bid.provider), []).append(i)
    kept = _keep_latest(nodes, received, groups, reasons)

    # Candidates per slot, best first; providers sorted before drawing tie-breaks, so the order
    # bids arrived in does not matter.
    candidates: list[list[_Candidate]] = [[] for _ in nodes]
    kept.sort(key=lambda k: (k[0], received[k[1]].provider))
    for slot, i, verified in kept:
        bid = received[i]
        value = score(nodes[slot], bid, rtt_ms=rtt_ms.get(bid.provider))
        candidates[slot].append(
            _Candidate(
                slot=slot,
                index=i,
                bid=bid,
                score=value,
                order=(-round(value, _TIE_DIGITS), rng.random()),
                gpus=frozenset(bid.gpus),
                verified=True if verified else None,
            )
        )
    for slot_candidates in candidates:
        slot_candidates.sort(key=lambda c: c.order)

    links = _links(bases, edges)
    search = _Search(nodes, slot_of, bases, candidates, links, rtt_ms, reasons)
    search.run(budget)
    return search.selection(received)


def _keep_latest(
    nodes: Sequence[NodeRequest],
    received: Sequence[Bid],
    groups: Mapping[tuple[int, str], list[int]],
    reasons: list[_Problem | None],
) -> list[tuple[int, int, bool]]:
    """Of each provider's bids for one slot (``groups``), the latest-expiring that is signed,
    as (slot, index, whether its signature is verified already); the reasons of the others."""
    kept: list[tuple[int, int, bool]] = []
    for (slot, provider), members in groups.items():
        members.sort(key=lambda i: -received[i].expires)  # stable: the first received wins ties
        if len(members) == 1:
            kept.append((slot, members[0], False))
            continue
        # Verified now, so that a forged later bid cannot hide a real one.
        good = [i for i in members if received[i].verify()]
        for i in members:
            if i not in good:
                reasons[i] = _BAD_SIGNATURE
            elif i != good[0]:
                reasons[i] = (
                    "duplicate",
                    f"provider {provider} sent a later-expiring bid for {nodes[slot].node}",
                )
        if good:
            kept.append((slot, good[0], True))
    return kept


def _links(bases: Sequence[str], edges: Sequence[EdgeConstraint]) -> list[list[_Edge]]:
    """For each slot, the edge constraints it has with other slots (both ways, every copy)."""
    links: list[list[_Edge]] = [[] for _ in bases]
    seen: set[tuple[int, int, int]] = set()
    for edge in edges:
        if edge.rtt <= 0:
            continue
        a, b = edge.edges
        label = f"{a}-{b} rtt<={edge.rtt}ms"
        ends_a = [i for i, base in enumerate(bases) if base == a]
        ends_b = [j for j, base in enumerate(bases) if base == b]
        for i, j in itertools.product(ends_a, ends_b):
            for x, y in ((i, j), (j, i)):
                if x != y and (x, y, edge.rtt) not in seen:
                    seen.add((x, y, edge.rtt))
                    links[x].append(_Edge(y, edge.rtt, label))
    return links


@final
class _Search:
    """The backtracking search over one selection's candidates, and its report."""

    def __init__(
        self,
        nodes: Sequence[NodeRequest],
        slot_of: Mapping[str, int],
        bases: list[str],
        candidates: list[list[_Candidate]],
        links: list[list[_Edge]],
        rtt_ms: Mapping[str, float],
        reasons: list[_Problem | None],
    ) -> None:
        self.nodes = nodes
        self.slot_of = slot_of
        self.bases = bases
        self.candidates = candidates
        self.links = links
        self.rtt_ms = rtt_ms
        self.reasons = reasons
        self.assigned: list[_Candidate | None] = [None] * len(nodes)
        self.hosted: dict[str, list[int]] = {}  # provider -> slots placed on it
        self.best: list[_Candidate | None] = list(self.assigned)
        self.best_count = 0
        self.steps = 0
        self.forged = 0  # bids placed in the current branch found to be forged
        # Fewest candidates first; a slot without any cannot be placed at all.
        self.order = sorted(
            (s for s in range(len(nodes)) if candidates[s]), key=lambda s: len(candidates[s])
        )

    def run(self, budget: int) -> None:
        self._descend(0, 0, budget)
        self._clear()
        for candidate in self.best:
            if candidate is not None:
                self._place(candidate)
        for slot in self.order:  # top up: what ran out of budget may still fit
            if self.assigned[slot] is None:
                for candidate in self.candidates[slot]:
                    if self._fits(candidate) and self._signed(candidate):
                        self._place(candidate)
                        break

    def _descend(self, depth: int, placed: int, budget: int) -> bool:
        """Place the slots from ``order[depth]`` on; true to stop (complete, or out of steps).

        Signatures are verified only when a placement is about to become the best one, so that
        the costly check is done on a handful of bids rather than on every bid tried; a forged
        one found then unwinds the search to its slot."""
        if placed > self.best_count and self._all_signed():
            self.best, self.best_count = list(self.assigned), placed
            if placed == len(self.order):
                return True
        if self._unwinding() or placed + len(self.order) - depth <= self.best_count:
            return False  # or: even placing every slot left would not beat the best
        slot = self.order[depth]
        for candidate in self.candidates[slot]:
            if self.steps >= budget:
                return True
            self.steps += 1
            if not self._fits(candidate):
                continue
            self._place(candidate)
            stop = self._descend(depth + 1, placed + 1, budget)
            self._remove(candidate)
            if stop:
                return True
            if self._unwinding():
                return False
        return self._descend(depth + 1, placed, budget)

    def _unwinding(self) -> bool:
        """Whether a forged bid is placed: the search returns to its slot to try another."""
        return self.forged > 0

    def _all_signed(self) -> bool:
        """Whether every bid placed is signed by its provider (counting the forged ones)."""
        for candidate in self.assigned:
            if candidate is not None and not self._signed(candidate):
                self.forged += 1
        return not self.forged

    def _fits(self, candidate: _Candidate) -> bool:
        """Whether the candidate fits with the current placement (not known to be forged)."""
        return candidate.verified is not False and self._conflict(candidate) is None

    def _signed(self, candidate: _Candidate) -> bool:
        """Whether the candidate's signature is its provider's (checked once, when needed)."""
        if candidate.verified is None:
            candidate.verified = candidate.bid.verify()
            if not candidate.verified:
                self.reasons[candidate.index] = _BAD_SIGNATURE
        return candidate.verified

    def _clear(self) -> None:
        self.assigned = [None] * len(self.nodes)
        self.hosted = {}

    def _place(self, candidate: _Candidate) -> None:
        self.assigned[candidate.slot] = candidate
        self.hosted.setdefault(candidate.bid.provider, []).append(candidate.slot)

    def _remove(self, candidate: _Candidate) -> None:
        if candidate.verified is False:
            self.forged -= 1
        self.assigned[candidate.slot] = None
        slots = self.hosted[candidate.bid.provider]
        slots.remove(candidate.slot)
        if not slots:
            del self.hosted[candidate.bid.provider]

    def _conflict(self, candidate: _Candidate) -> _Problem | None:
        """Why the candidate does not fit with the slots placed (``None``: it does)."""
        provider, slot = candidate.bid.provider, candidate.slot
        hosted = self.hosted.get(provider)
        for other in hosted or ():
            if other == slot:
                continue
            if self.bases[other] == self.bases[slot]:
                return (
                    f"provider already hosts a copy of {self.bases[slot]}",
                    f"provider {provider} already hosts {self.nodes[other].node}",
                )
            return (
                "provider already hosts another node",
                f"provider {provider} already hosts {self.nodes[other].node}"
                " (each node of an ensemble runs on its own provider)",
            )
        for link in self.links[slot]:
            placed = self.assigned[link.other]
            if placed is None:
                continue
            rtt = estimate_rtt(candidate.bid, placed.bid, self.rtt_ms)
            if rtt is None or rtt > link.rtt:
                estimate = "unknown" if rtt is None else f"estimated at {rtt:g} ms"
                return (
                    f"edge constraint {link.label} cannot be met",
                    f"edge constraint {link.label} cannot be met with"
                    f" {self.nodes[link.other].node} on {placed.bid.provider}"
                    f" (round trip {estimate})",
                )
        return None

    def selection(self, received: list[Bid]) -> Selection:
        """The report: what is placed, why every other bid and every empty slot is not."""
        chosen = {c.index: c for c in self.assigned if c is not None}
        by_index = {c.index: c for slot in self.candidates for c in slot}
        rejections: list[Rejection] = []
        tally: list[Counter[str]] = [Counter() for _ in self.nodes]
        for i, bid in enumerate(received):
            if i in chosen:
                continue
            problem = self.reasons[i]
            candidate = by_index.get(i)
            if problem is None and candidate is not None:
                problem = self._passed_over(candidate)
            if problem is None:  # cannot happen: every bid is filtered or a candidate
                problem = ("not chosen", "not chosen")
            rejections.append(Rejection(bid.provider, bid.node, problem[1]))
            slot = self.slot_of.get(bid.node)
            if slot is not None:
                tally[slot][problem[0]] += 1
        unplaced: dict[str, str] = {}
        for slot, node in enumerate(self.nodes):
            if self.assigned[slot] is not None:
                continue
            if not tally[slot]:
                unplaced[node.node] = "no bid"
                continue
            counts = sorted(tally[slot].items(), key=lambda kv: (-kv[1], kv[0]))
            listed = ", ".join(f"{what} ({count})" for what, count in counts)
            unplaced[node.node] = f"every bid was rejected: {listed}"
        return Selection(
            placement={
                node.node: placed.bid
                for node, placed in zip(self.nodes, self.assigned, strict=True)
                if placed is not None
            },
            rejections=tuple(rejections),
            unplaced=unplaced,
        )

    def _passed_over(self, candidate: _Candidate) -> _Problem:
        """Why an acceptable bid is not the one placed on its slot."""
        conflict = self._conflict(candidate)
        if conflict is not None:
            return conflict
        winner = self.assigned[candidate.slot]
        if winner is None:  # the top-up would have placed it
            return ("not chosen", "not chosen")
        mine, theirs = candidate.order[0], winner.order[0]
        versus = f"score {candidate.score:.3f} vs {winner.score:.3f}"
        if mine > theirs:
            return ("outscored", f"outscored by {winner.bid.provider} ({versus})")
        if mine == theirs:
            return ("outscored", f"outscored by {winner.bid.provider} ({versus}: a tie, drawn)")
        # Not expected: the search tries the better bid first, and would have kept it.
        return ("not chosen", f"not chosen: {winner.bid.provider} was ({versus})")
