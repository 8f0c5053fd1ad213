"""Choosing bids: each hard filter and its reason, the score, the round-trip estimate, the search
on hand-made cases (a provider per node, copies, GPUs, edges, backtracking, budget, ties, hostile
bids), and properties on generated ones, checked against an oracle written here from the rules:
every placement is valid, every bid is accounted for, and a brute-force search on small cases
finds no complete placement that ``select`` missed."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from dmsnode.deployment import Bid, NodeRequest, location_problem
from dmsnode.ensemble import EdgeConstraint, GpuRequest, Location, LocationConstraints
from dmsnode.orchestrator._selection import (
    Rejection,
    Selection,
    bid_problem,
    estimate_rtt,
    score,
    select,
)
from dmsnode.resources import Resources
from nuactor import Identity

NOW = 1_000.0
GiB = 1024**3
#: Signing keys made once: generated cases pick among them.
POOL = tuple(Identity.generate() for _ in range(8))
P1, P2, P3, P4, P5 = POOL[:5]
EUROPE = Location("Europe")
PARIS = Location("Europe", country="FR", city="Paris")
ASIA = Location("Asia")


def node(
    name: str,
    *,
    cores: float = 1.0,
    ram: int = GiB,
    disk: int = GiB,
    gpus: int = 0,
    accept: tuple[Location, ...] = (),
    reject: tuple[Location, ...] = (),
    peer: str = "",
) -> NodeRequest:
    return NodeRequest(
        node=name,
        executors=("docker",),
        resources=Resources(cpu_cores=cores, ram=ram, disk=disk),
        gpus=tuple(GpuRequest() for _ in range(gpus)),
        location=LocationConstraints(accept=accept, reject=reject),
        peer=peer,
    )


def offer(
    identity: Identity,
    slot: str,
    *,
    cores: float = 4.0,
    ram: int = 4 * GiB,
    disk: int = 4 * GiB,
    expires: float = NOW + 60,
    location: Location | None = None,
    gpus: tuple[str, ...] = (),
    rtt: Mapping[str, float] | None = None,
) -> Bid:
    """A bid signed by ``identity``."""
    return Bid(
        deployment="d1",
        nonce="n1",
        node=slot,
        provider=identity.did,
        free=Resources(cpu_cores=cores, ram=ram, disk=disk),
        expires=expires,
        location=location,
        gpus=gpus,
        rtt_ms={} if rtt is None else dict(rtt),
    ).sign(identity)


def reasons(selection: Selection) -> dict[tuple[str, str], str]:
    return {(r.provider, r.node): r.reason for r in selection.rejections}


# --- bid_problem ---------------------------------------------------------------------------------


def test_a_good_bid_has_no_problem() -> None:
    assert bid_problem(node("web"), offer(P1, "web"), now=NOW) is None


def test_a_bid_for_another_node() -> None:
    assert bid_problem(node("web"), offer(P1, "db"), now=NOW) == "the bid is for node db, not web"


@pytest.mark.parametrize(
    ("expires", "expired"), [(NOW - 2.5, True), (NOW, True), (NOW + 0.01, False)]
)
def test_an_expired_bid(expires: float, expired: bool) -> None:
    problem = bid_problem(node("web"), offer(P1, "web", expires=expires), now=NOW)
    if expired:
        assert problem is not None
        assert problem.startswith("the bid expired")
    else:
        assert problem is None
    if expires < NOW:
        assert problem == "the bid expired 2.5 s ago"


def test_an_excluded_provider() -> None:
    problem = bid_problem(node("web"), offer(P1, "web"), exclude={P1.did}, now=NOW)
    assert problem == f"provider {P1.did} is excluded from this deployment"
    assert bid_problem(node("web"), offer(P1, "web"), exclude={P2.did}, now=NOW) is None


def test_a_node_pinned_to_a_peer() -> None:
    pinned = node("web", peer=P2.did)
    assert bid_problem(pinned, offer(P1, "web"), now=NOW) == f"node web must run on peer {P2.did}"
    assert bid_problem(pinned, offer(P2, "web"), now=NOW) is None


def test_locations() -> None:
    in_europe = node("web", accept=(EUROPE,))
    problem = bid_problem(in_europe, offer(P1, "web", location=ASIA), now=NOW)
    assert problem is not None
    assert "Asia" in problem
    assert "not one accepted" in problem
    problem = bid_problem(in_europe, offer(P1, "web"), now=NOW)
    assert problem == "the node must run in a given place and this provider states no location"
    assert bid_problem(in_europe, offer(P1, "web", location=PARIS), now=NOW) is None
    not_paris = node("web", reject=(PARIS,))
    problem = bid_problem(not_paris, offer(P1, "web", location=PARIS), now=NOW)
    assert problem is not None
    assert "rejected" in problem
    assert bid_problem(not_paris, offer(P1, "web", location=EUROPE), now=NOW) is None


@pytest.mark.parametrize(
    ("cores", "ram", "disk", "short"),
    [
        (0.5, GiB, GiB, "1 cores (only 0.5 available)"),
        (1.0, GiB - 1, GiB, f"{GiB} bytes of RAM (only {GiB - 1} available)"),
        (1.0, GiB, 0, f"{GiB} bytes of disk (only 0 available)"),
    ],
)
def test_not_enough_room(cores: float, ram: int, disk: int, short: str) -> None:
    bid = offer(P1, "web", cores=cores, ram=ram, disk=disk)
    assert bid_problem(node("web"), bid, now=NOW) == f"the node needs {short}"
    exact = offer(P1, "web", cores=1.0, ram=GiB, disk=GiB)
    assert bid_problem(node("web"), exact, now=NOW) is None


def test_too_few_gpus() -> None:
    two = node("web", gpus=2)
    problem = bid_problem(two, offer(P1, "web", gpus=("nvidia:0",)), now=NOW)
    assert problem == "the node needs 2 GPUs, the bid offers 1"
    # A device offered twice counts once.
    problem = bid_problem(two, offer(P1, "web", gpus=("nvidia:0", "nvidia:0")), now=NOW)
    assert problem == "the node needs 2 GPUs, the bid offers 1"
    assert bid_problem(two, offer(P1, "web", gpus=("nvidia:0", "amd:0")), now=NOW) is None


def test_a_bad_signature() -> None:
    bid = offer(P1, "web")
    tampered = replace(bid, free=Resources(cpu_cores=64, ram=bid.free.ram, disk=bid.free.disk))
    posing = replace(bid, provider=P2.did)
    for forged in (tampered, posing, replace(bid, signature=b""), replace(bid, provider="x")):
        assert (
            bid_problem(node("web"), forged, now=NOW) == "the bid's signature is not its provider's"
        )


# --- score, estimate_rtt -------------------------------------------------------------------------


def test_a_perfect_score() -> None:
    exact = offer(P1, "web", cores=1, ram=GiB, disk=GiB, location=EUROPE)
    assert score(node("web", accept=(EUROPE,)), exact, rtt_ms=0.0) == pytest.approx(1.0)


def test_best_fit() -> None:
    """Half of the provider left over halves the fit (weight 0.5); the tighter fit wins."""
    web = node("web")
    exact = offer(P1, "web", cores=1, ram=GiB, disk=GiB)
    double = offer(P1, "web", cores=2, ram=2 * GiB, disk=2 * GiB)
    huge = offer(P1, "web", cores=64, ram=64 * GiB, disk=64 * GiB)
    assert score(web, exact, rtt_ms=0.0) - score(web, double, rtt_ms=0.0) == pytest.approx(0.25)
    assert score(web, double, rtt_ms=0.0) > score(web, huge, rtt_ms=0.0)
    # Only RAM left over: a third of the fit lost.
    ram = offer(P1, "web", cores=1, ram=2 * GiB, disk=GiB)
    assert score(web, exact, rtt_ms=0.0) - score(web, ram, rtt_ms=0.0) == pytest.approx(0.5 / 6)


def test_location_ranks() -> None:
    web = node("web", accept=(PARIS, EUROPE))
    paris = score(web, offer(P1, "web", location=PARIS), rtt_ms=0.0)
    berlin = score(web, offer(P1, "web", location=Location("Europe", "DE")), rtt_ms=0.0)
    nowhere = score(node("web"), offer(P1, "web", location=PARIS), rtt_ms=0.0)
    unstated = score(web, offer(P1, "web"), rtt_ms=0.0)
    assert paris - berlin == pytest.approx(0.2 * 0.25)
    assert berlin - nowhere == pytest.approx(0.2 * 0.25)
    assert unstated == pytest.approx(nowhere)


def test_round_trip_scores() -> None:
    web, bid = node("web"), offer(P1, "web")
    base = score(web, bid, rtt_ms=0.0)
    assert base - score(web, bid, rtt_ms=50.0) == pytest.approx(0.15)
    assert score(web, bid, rtt_ms=None) == pytest.approx(score(web, bid, rtt_ms=50.0))
    assert score(web, bid, rtt_ms=10.0) > score(web, bid, rtt_ms=20.0)
    assert score(web, bid, rtt_ms=10_000.0) > base - 0.3


@given(
    cores=st.floats(0, 8),
    free=st.floats(0, 8),
    rtt=st.none() | st.floats(0, 1e6),
    place=st.sampled_from([None, EUROPE, PARIS, ASIA]),
)
def test_scores_are_in_the_unit_interval(
    cores: float, free: float, rtt: float | None, place: Location | None
) -> None:
    bid = Bid("d", "n", "web", P1.did, Resources(cpu_cores=free, ram=3, disk=0), NOW, place)
    value = score(node("web", cores=cores, ram=5, accept=(PARIS, EUROPE)), bid, rtt_ms=rtt)
    assert 0.0 <= value <= 1.0


def test_estimated_round_trips() -> None:
    def two(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[Bid, Bid]:
        return offer(P1, "web", rtt=a), offer(P2, "db", rtt=b)

    a, b = two({}, {})
    assert estimate_rtt(a, offer(P1, "db"), {}) == 0.0
    assert estimate_rtt(a, b, {}) is None
    assert estimate_rtt(a, b, {P1.did: 10.0}) is None
    assert estimate_rtt(a, b, {P1.did: 10.0, P2.did: 4.0}) == 14.0
    a, b = two({P2.did: 7.0}, {})
    assert estimate_rtt(a, b, {P1.did: 1.0, P2.did: 1.0}) == 7.0  # measured beats the bound
    assert estimate_rtt(b, a, {}) == 7.0
    a, b = two({P2.did: 7.0}, {P1.did: 5.0})
    assert estimate_rtt(a, b, {}) == 5.0
    a, b = two({P2.did: -1.0}, {P1.did: 9.0})
    assert estimate_rtt(a, b, {}) == 9.0


# --- select: hand-made cases ---------------------------------------------------------------------


def test_no_bids() -> None:
    selection = select([node("web"), node("db")], [], now=NOW)
    assert selection.placement == {}
    assert selection.rejections == ()
    assert selection.unplaced == {"web": "no bid", "db": "no bid"}
    assert not selection.complete


def test_no_nodes() -> None:
    selection = select([], [offer(P1, "web")], now=NOW)
    assert selection.complete
    assert selection.rejections == (Rejection(P1.did, "web", "no node web was asked for"),)


def test_a_slot_asked_twice_is_a_bug() -> None:
    with pytest.raises(ValueError, match="twice"):
        select([node("web"), node("web")], [], now=NOW)


def test_the_best_bid_wins_and_the_others_say_why() -> None:
    web = node("web")
    tight = offer(P1, "web", cores=1, ram=GiB, disk=GiB)
    loose = offer(P2, "web", cores=8, ram=8 * GiB, disk=8 * GiB)
    unknown = offer(P3, "ghost")
    selection = select([web], [loose, unknown, tight], now=NOW)
    assert selection.complete
    assert selection.placement == {"web": tight}
    assert reasons(selection) == {
        (P2.did, "web"): (
            f"outscored by {P1.did} (score {score(web, loose, rtt_ms=None):.3f}"
            f" vs {score(web, tight, rtt_ms=None):.3f})"
        ),
        (P3.did, "ghost"): "no node ghost was asked for",
    }


def test_the_orchestrators_round_trips_count() -> None:
    bids = [offer(P1, "web"), offer(P2, "web")]
    near_2 = select([node("web")], bids, now=NOW, rtt_ms={P1.did: 90.0, P2.did: 5.0})
    near_1 = select([node("web")], bids, now=NOW, rtt_ms={P1.did: 5.0, P2.did: 90.0})
    assert near_2.placement["web"].provider == P2.did
    assert near_1.placement["web"].provider == P1.did


def test_every_bid_rejected_is_summed_up() -> None:
    web = node("web", accept=(EUROPE,))
    bids = [
        offer(P1, "web", expires=NOW - 1, location=EUROPE),
        offer(P2, "web", expires=NOW, location=EUROPE),
        replace(offer(P3, "web", location=EUROPE), signature=bytes(64)),
        offer(P4, "web", location=ASIA),
        offer(P5, "web", location=EUROPE),
    ]
    selection = select([web], bids, now=NOW, exclude=[P5.did])
    assert selection.placement == {}
    assert selection.unplaced == {
        "web": "every bid was rejected: expired (2), bad signature (1),"
        " excluded (1), location not accepted (1)"
    }
    got = reasons(selection)
    assert got[P3.did, "web"] == "the bid's signature is not its provider's"
    assert got[P5.did, "web"] == f"provider {P5.did} is excluded from this deployment"
    assert len(selection.rejections) == 5


def test_the_latest_expiring_bid_of_a_provider_is_kept() -> None:
    early, late = offer(P1, "web", expires=NOW + 10), offer(P1, "web", expires=NOW + 20)
    selection = select([node("web")], [late, early], now=NOW)
    assert selection.placement == {"web": late}
    assert selection.rejections == (
        Rejection(P1.did, "web", f"provider {P1.did} sent a later-expiring bid for web"),
    )


def test_a_forged_later_bid_does_not_hide_a_real_one() -> None:
    real = offer(P1, "web", expires=NOW + 10)
    forged = replace(offer(P1, "web", expires=NOW + 20), signature=bytes(64))
    selection = select([node("web")], [forged, real], now=NOW)
    assert selection.placement == {"web": real}
    assert reasons(selection) == {(P1.did, "web"): "the bid's signature is not its provider's"}


def test_a_forged_best_bid_gives_way_to_the_next() -> None:
    web = node("web")
    forged = replace(offer(P1, "web", cores=1, ram=GiB, disk=GiB), signature=bytes(64))
    honest = offer(P2, "web")
    selection = select([web], [forged, honest], now=NOW)
    assert selection.placement == {"web": honest}
    assert reasons(selection) == {(P1.did, "web"): "the bid's signature is not its provider's"}


def test_forged_bids_deep_in_the_search_unwind_it() -> None:
    """The search verifies signatures late: a forged bid found in a full placement sends it back
    to that bid's slot, and the placement it ends with has none."""
    nodes = [node("a"), node("b"), node("c")]
    bids = []
    for i, slot in enumerate("abc"):
        bids.append(replace(offer(POOL[i], slot, cores=1, ram=GiB, disk=GiB), signature=b"x"))
        bids.append(offer(POOL[i + 3], slot))
    selection = select(nodes, bids, now=NOW)
    assert selection.complete
    assert {s: b.provider for s, b in selection.placement.items()} == {
        "a": POOL[3].did,
        "b": POOL[4].did,
        "c": POOL[5].did,
    }
    assert all(
        r.reason == "the bid's signature is not its provider's" for r in selection.rejections
    )


def test_copies_go_to_distinct_providers() -> None:
    nodes = [node("web"), node("web#1"), node("web#2")]
    bids = [offer(p, slot) for p in (P1, P2) for slot in ("web", "web#1", "web#2")]
    selection = select(nodes, bids, now=NOW)
    assert len(selection.placement) == 2
    assert len({b.provider for b in selection.placement.values()}) == 2
    [(slot, why)] = selection.unplaced.items()
    assert why.startswith("every bid was rejected: provider already hosts a copy of web (2)")
    for provider in (P1, P2):
        assert reasons(selection)[provider.did, slot].startswith(
            f"provider {provider.did} already hosts web"
        )


def test_different_nodes_go_to_distinct_providers() -> None:
    """As in NuNet, each node of an ensemble is a machine of its own: two nodes never share a
    provider, however much room it has."""
    nodes = [node("web", cores=1), node("db", cores=1)]
    alone = select(nodes, [offer(P1, "web", cores=8), offer(P1, "db", cores=8)], now=NOW)
    assert len(alone.placement) == 1
    [(slot, why)] = alone.unplaced.items()
    assert why == "every bid was rejected: provider already hosts another node (1)"
    other = "db" if slot == "web" else "web"
    assert reasons(alone)[P1.did, slot] == (
        f"provider {P1.did} already hosts {other} (each node of an ensemble runs on its own"
        " provider)"
    )
    two = select(
        nodes,
        [offer(P1, "web", cores=8), offer(P1, "db", cores=8), offer(P2, "db", cores=2)],
        now=NOW,
    )
    assert two.complete
    assert {b.provider for b in two.placement.values()} == {P1.did, P2.did}


def test_an_edge_constraint_measured_by_a_provider() -> None:
    nodes = [node("web"), node("db")]
    edge = EdgeConstraint(("web", "db"), rtt=20)
    near = [offer(P1, "web", rtt={P2.did: 15.0}), offer(P2, "db")]
    assert select(nodes, near, now=NOW, edges=[edge]).complete
    far = [offer(P1, "web", rtt={P2.did: 25.0}), offer(P2, "db")]
    selection = select(nodes, far, now=NOW, edges=[edge])
    # One bid each: web, listed first, is placed first.
    assert selection.placement == {"web": far[0]}
    assert selection.unplaced == {
        "db": "every bid was rejected: edge constraint web-db rtt<=20ms cannot be met (1)"
    }
    assert reasons(selection) == {
        (P2.did, "db"): f"edge constraint web-db rtt<=20ms cannot be met with web on {P1.did}"
        " (round trip estimated at 25 ms)"
    }


def test_an_edge_constraint_bounded_through_the_orchestrator() -> None:
    nodes = [node("web"), node("db")]
    edge = EdgeConstraint(("db", "web"), rtt=20, bw=10**12)  # bandwidth is not measured
    bids = [offer(P1, "web"), offer(P2, "db")]
    assert select(nodes, bids, now=NOW, edges=[edge], rtt_ms={P1.did: 8, P2.did: 12}).complete
    assert not select(nodes, bids, now=NOW, edges=[edge], rtt_ms={P1.did: 8, P2.did: 13}).complete
    unknown = select(nodes, bids, now=NOW, edges=[edge], rtt_ms={P1.did: 1})
    assert not unknown.complete
    assert any("(round trip unknown)" in r.reason for r in unknown.rejections)
    # No round trip asked, or a constraint on nodes not requested: nothing to meet.
    assert select(nodes, bids, now=NOW, edges=[EdgeConstraint(("web", "db"))]).complete
    assert select(nodes, bids, now=NOW, edges=[EdgeConstraint(("web", "x"), rtt=1)]).complete


def test_an_edge_constraint_applies_to_every_copy() -> None:
    nodes = [node("web"), node("web#1"), node("db")]
    edge = EdgeConstraint(("web", "db"), rtt=10)
    bids = [
        offer(P1, "web", rtt={P3.did: 5.0}),
        offer(P1, "web#1", rtt={P3.did: 5.0}),
        offer(P2, "web", rtt={P3.did: 50.0}),
        offer(P2, "web#1", rtt={P3.did: 50.0}),
        offer(P3, "db"),
    ]
    selection = select(nodes, bids, now=NOW, edges=[edge])
    assert len(selection.placement) == 2
    assert not selection.complete


def test_the_search_backtracks() -> None:
    """Greedy by score puts a on P1, after which no bid for b meets the edge constraint; the
    search must go back and put a on P2."""
    nodes = [node("a"), node("b")]
    edge = EdgeConstraint(("a", "b"), rtt=10)
    bids = [
        offer(P1, "a", cores=1, ram=GiB, disk=GiB),  # the best fit
        offer(P2, "a", rtt={P4.did: 3.0}),
        offer(P3, "b", cores=1, ram=GiB, disk=GiB),
        offer(P4, "b"),
    ]
    selection = select(nodes, bids, now=NOW, edges=[edge])
    assert selection.complete
    assert {s: b.provider for s, b in selection.placement.items()} == {"a": P2.did, "b": P4.did}
    got = reasons(selection)
    assert got[P1.did, "a"].startswith(
        f"edge constraint a-b rtt<=10ms cannot be met with b on {P4.did}"
    )
    # Out of budget after the first bid tried: the best partial placement, topped up.
    short = select(nodes, bids, now=NOW, edges=[edge], budget=1)
    assert len(short.placement) == 1
    assert len(short.unplaced) == 1


def test_a_forged_bid_found_late_still_lets_the_search_backtrack() -> None:
    """c's forged best bid is found out only once placed; the search then goes on from c, and
    still has to backtrack for a and b (a greedy pick would put a on P1)."""
    nodes = [node("c"), node("a"), node("b")]
    edge = EdgeConstraint(("a", "b"), rtt=10)
    bids = [
        replace(offer(P5, "c", cores=1, ram=GiB, disk=GiB), signature=bytes(64)),
        offer(POOL[5], "c"),
        offer(P1, "a", cores=1, ram=GiB, disk=GiB),
        offer(P2, "a", rtt={P4.did: 3.0}),
        offer(P3, "b", cores=1, ram=GiB, disk=GiB),
        offer(P4, "b"),
    ]
    selection = select(nodes, bids, now=NOW, edges=[edge])
    assert selection.complete
    assert {s: b.provider for s, b in selection.placement.items()} == {
        "c": POOL[5].did,
        "a": P2.did,
        "b": P4.did,
    }
    assert reasons(selection)[P5.did, "c"] == "the bid's signature is not its provider's"


def test_out_of_budget_the_rest_is_placed_greedily() -> None:
    """The budget bounds the search, not the result: slots it did not reach still get the best
    bid that fits."""
    nodes = [node("a"), node("b"), node("c")]
    bids = [offer(p, slot) for p in (P1, P2) for slot in "abc"]
    bids += [offer(P3, slot) for slot in "abc"]
    for budget in (0, 1, 2):
        selection = select(nodes, bids, now=NOW, budget=budget)
        assert selection.complete


def test_a_node_takes_its_second_best_when_its_best_is_taken() -> None:
    """c's only provider is b's best fit: b takes its second best, and its best says why."""
    nodes = [node("b", cores=2), node("c", cores=2)]
    bids = [
        offer(P1, "b", cores=2, ram=GiB, disk=GiB),  # b's best fit
        offer(P2, "b", cores=3),
        offer(P1, "c", cores=2, ram=GiB, disk=GiB),  # c's only bid
        offer(P3, "b", cores=4),
    ]
    selection = select(nodes, bids, now=NOW)
    assert selection.complete
    assert selection.placement["b"].provider == P2.did
    got = reasons(selection)
    assert got[P1.did, "b"].startswith(f"provider {P1.did} already hosts c")
    assert got[P3.did, "b"].startswith(f"outscored by {P2.did}")


def test_ties_are_broken_by_the_rng() -> None:
    nodes = [node("web")]
    bids = [offer(p, "web") for p in POOL]
    winners = Counter(
        select(nodes, bids, now=NOW, rng=random.Random(seed)).placement["web"].provider
        for seed in range(40)
    )
    assert len(winners) > 3
    first = select(nodes, bids, now=NOW, rng=random.Random(7))
    assert select(nodes, bids, now=NOW, rng=random.Random(7)) == first
    assert select(nodes, bids[::-1], now=NOW, rng=random.Random(7)).placement == first.placement
    assert select(nodes, bids, now=NOW) == select(nodes, bids, now=NOW, rng=random.Random(0))
    assert all("a tie, drawn" in r.reason for r in first.rejections)


# --- properties ----------------------------------------------------------------------------------

PLACES = (None, EUROPE, PARIS, ASIA, Location("Europe", country="DE"))
BASES = ("web", "db", "cache")


@dataclass(frozen=True)
class Instance:
    nodes: tuple[NodeRequest, ...]
    bids: tuple[Bid, ...]
    edges: tuple[EdgeConstraint, ...]
    exclude: frozenset[str]
    rtt_ms: Mapping[str, float]


def chance(draw: st.DrawFn, percent: int) -> bool:
    return draw(st.integers(0, 99)) >= 100 - percent  # 0, the simplest, is "no"


@st.composite
def instances(draw: st.DrawFn, max_slots: int = 4, max_providers: int = 5) -> Instance:
    """Providers with random free resources, GPUs, places and round trips; nodes with copies,
    GPUs, places and pins; bids for them, some duplicated, expired, forged or for no node.

    Tuned so that many cases are complete only through backtracking, share providers, and meet
    or break edge constraints (not only hopeless or trivial ones)."""
    providers = POOL[: draw(st.integers(2, max_providers))]
    free = {
        p.did: Resources(
            cpu_cores=draw(st.sampled_from([2.0, 3.0, 4.0])),
            ram=draw(st.integers(2, 6)),
            disk=draw(st.integers(2, 6)),
        )
        for p in providers
    }
    devices = {
        p.did: draw(st.sampled_from([(), ("nvidia:0",), ("nvidia:0", "amd:0")])) for p in providers
    }
    places = {p.did: draw(st.sampled_from(PLACES)) for p in providers}
    orchestrator = {p.did: float(draw(st.integers(0, 25))) for p in providers if chance(draw, 75)}
    measured = {
        p.did: {
            q.did: float(draw(st.integers(0, 40)))
            for q in providers
            if q is not p and chance(draw, 50)
        }
        for p in providers
    }

    bases = draw(st.lists(st.sampled_from(BASES), min_size=1, max_size=3, unique=True))
    nodes: list[NodeRequest] = []
    for base in bases:
        if len(nodes) >= max_slots:
            break
        copies = draw(st.integers(0, min(2, max_slots - len(nodes) - 1)))
        request = NodeRequest(
            node=base,
            executors=("docker",),
            resources=Resources(
                cpu_cores=draw(st.sampled_from([0.5, 1.0, 1.5, 2.0])),
                ram=draw(st.integers(1, 3)),
                disk=draw(st.integers(1, 3)),
            ),
            gpus=(GpuRequest(),) if chance(draw, 25) else (),
            location=LocationConstraints(
                accept=tuple(draw(st.lists(st.sampled_from(PLACES[1:]), min_size=1, max_size=2)))
                if chance(draw, 25)
                else (),
                reject=(draw(st.sampled_from(PLACES[1:])),) if chance(draw, 15) else (),
            ),
            peer=draw(st.sampled_from(providers)).did if chance(draw, 8) else "",
        )
        for copy in range(copies + 1):
            name = base if copy == 0 else f"{base}#{copy}"
            nodes.append(replace(request, node=name))

    bids: list[Bid] = []
    for request in nodes:
        for p in providers:
            kind = draw(st.sampled_from(["none", *["ok"] * 8, "dup", "expired", "forged"]))
            if kind == "none":
                continue
            offered = devices[p.did]
            if chance(draw, 30):
                offered = tuple(draw(st.permutations(offered)))
            # What a provider reports free shrinks as it commits to other work between bids.
            shrink = draw(st.sampled_from([0, 0, 0, 1]))
            bid = Bid(
                deployment="d1",
                nonce="n1",
                node=request.node,
                provider=p.did,
                free=Resources(
                    cpu_cores=free[p.did].cpu_cores - shrink * 0.5,
                    ram=free[p.did].ram - shrink,
                    disk=free[p.did].disk,
                ),
                expires=NOW + draw(st.integers(1, 100)),
                location=places[p.did],
                gpus=tuple(offered[: len(request.gpus)]),
                rtt_ms=measured[p.did],
            )
            if kind == "expired":
                bid = replace(bid, expires=NOW - draw(st.integers(0, 5)))
            bids.append(bid.sign(p))
            if kind == "forged":
                bids[-1] = replace(bids[-1], signature=bytes(64))
            if kind == "dup":
                later = replace(bid, expires=bid.expires + draw(st.integers(1, 5))).sign(p)
                bids.append(replace(later, signature=bytes(64)) if chance(draw, 50) else later)
    if chance(draw, 20):
        bids.append(offer(providers[0], "ghost"))

    edges = tuple(
        EdgeConstraint(
            (draw(st.sampled_from(bases)), draw(st.sampled_from(bases))),
            rtt=draw(st.sampled_from([0, 10, 25, 50])),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    exclude = frozenset(p.did for p in providers if chance(draw, 8))
    return Instance(
        nodes=tuple(nodes),
        bids=tuple(draw(st.permutations(bids))),
        edges=edges,
        exclude=exclude,
        rtt_ms=orchestrator,
    )


@st.composite
def planted(draw: st.DrawFn) -> Instance:
    """Cases with a complete placement hidden among decoys that score better and lead nowhere.

    The planted providers have room for exactly their planted nodes (plus a core or two, so they
    fit less tightly than a decoy) and short round trips to one another. The decoys are
    strangers that fit their nodes exactly but state no round trips (edge constraints fail
    with them), planted providers of other nodes (they crowd them out), and forged bids."""
    bases = draw(st.lists(st.sampled_from(BASES), min_size=1, max_size=3, unique=True))
    nodes: list[NodeRequest] = []
    for base in bases:
        if len(nodes) >= 4:
            break
        copies = draw(st.integers(0, 4 - len(nodes) - 1))
        request = NodeRequest(
            node=base,
            executors=("docker",),
            resources=Resources(
                cpu_cores=draw(st.sampled_from([0.5, 1.0, 2.0])),
                ram=draw(st.integers(1, 3)),
                disk=draw(st.integers(1, 3)),
            ),
            gpus=(GpuRequest(),) if chance(draw, 30) else (),
        )
        nodes.extend(
            replace(request, node=base if n == 0 else f"{base}#{n}") for n in range(copies + 1)
        )
    # The hidden placement: a provider of its own for every slot (and maybe a spare one).
    count = len(nodes) + draw(st.integers(0, 1))
    providers, strangers = POOL[:count], POOL[count : count + draw(st.integers(1, 2))]
    chosen = draw(st.permutations(providers))
    host: dict[str, Identity] = {request.node: p for request, p in zip(nodes, chosen, strict=False)}
    free: dict[str, Resources] = {}
    keys: dict[str, tuple[str, ...]] = {}
    for p in providers:
        mine = [n for n in nodes if host[n.node] is p]
        slack = draw(st.integers(1, 2))
        free[p.did] = Resources(
            cpu_cores=sum(n.resources.cpu_cores for n in mine) + slack,
            ram=sum(n.resources.ram for n in mine) + draw(st.integers(0, 1)),
            disk=sum(n.resources.disk for n in mine) + draw(st.integers(0, 1)),
        )
        count = 0
        for n in mine:
            keys[n.node] = tuple(f"nvidia:{count + i}" for i in range(len(n.gpus)))
            count += len(n.gpus)
    near = {p.did: {q.did: float(draw(st.integers(0, 10))) for q in providers} for p in providers}
    edges = tuple(
        EdgeConstraint(
            (draw(st.sampled_from(bases)), draw(st.sampled_from(bases))),
            rtt=draw(st.sampled_from([10, 25])),
        )
        for _ in range(draw(st.integers(1, 3)))
    )

    bids: list[Bid] = []
    for request in nodes:
        p = host[request.node]
        planted_bid = Bid(
            "d1", "n1", request.node, p.did, free[p.did], NOW + 50, None, keys[request.node]
        )
        bids.append(replace(planted_bid, rtt_ms=near[p.did]).sign(p))
        for q in (*providers, *strangers):
            if q is p or not chance(draw, 70):
                continue
            if q in strangers:  # an exact fit, but no round trip known to anyone
                decoy_free = replace(request.resources, gpus=())
                offered = tuple(f"nvidia:{i}" for i in range(len(request.gpus)))
                decoy = Bid("d1", "n1", request.node, q.did, decoy_free, NOW + 50, None, offered)
            else:  # a planted provider of other nodes, offering the devices they need
                offered = tuple(f"nvidia:{i}" for i in range(len(request.gpus)))
                decoy = Bid(
                    "d1",
                    "n1",
                    request.node,
                    q.did,
                    free[q.did],
                    NOW + 50,
                    None,
                    offered,
                    rtt_ms=near[q.did],
                )
            bids.append(decoy.sign(q))
            if chance(draw, 15):  # a forged bid that would fit best of all
                forged = replace(planted_bid, provider=q.did, free=request.resources)
                bids.append(replace(forged, signature=bytes(64)))
    return Instance(
        nodes=tuple(nodes),
        bids=tuple(draw(st.permutations(bids))),
        edges=edges,
        exclude=frozenset(),
        rtt_ms={},
    )


def run(case: Instance, *, seed: int = 0, bids: Sequence[Bid] | None = None) -> Selection:
    return select(
        case.nodes,
        case.bids if bids is None else bids,
        now=NOW,
        edges=case.edges,
        exclude=case.exclude,
        rtt_ms=case.rtt_ms,
        rng=random.Random(seed),
    )


def acceptable(case: Instance, request: NodeRequest, bid: Bid) -> bool:
    """The hard filters, written again from their statement."""
    need = request.resources
    return (
        bid.node == request.node
        and bid.expires > NOW
        and bid.provider not in case.exclude
        and (not request.peer or bid.provider == request.peer)
        and location_problem(request.location, bid.location) is None
        and need.cpu_cores <= bid.free.cpu_cores
        and need.ram <= bid.free.ram
        and need.disk <= bid.free.disk
        and len(set(bid.gpus)) >= len(request.gpus)
        and bid.verify()
    )


def oracle_rtt(a: Bid, b: Bid, orchestrator: Mapping[str, float]) -> float | None:
    """The estimate rule, written again from its statement."""
    if a.provider == b.provider:
        return 0.0
    direct = [m for m in (a.rtt_ms.get(b.provider), b.rtt_ms.get(a.provider)) if m is not None]
    if direct:
        return min(direct)
    if a.provider in orchestrator and b.provider in orchestrator:
        return orchestrator[a.provider] + orchestrator[b.provider]
    return None


def violations(case: Instance, placement: Mapping[str, Bid]) -> list[str]:
    """What breaks the rules between placed nodes (the bids are taken to be acceptable)."""
    found: list[str] = []
    requests = {n.node: n for n in case.nodes}
    by_provider: dict[str, list[str]] = {}
    for slot, bid in placement.items():
        by_provider.setdefault(bid.provider, []).append(slot)
    for provider, slots in by_provider.items():
        if len(slots) > 1:
            found.append(f"several nodes on one provider: {slots}")
        frees = [placement[s].free for s in slots]
        if (
            sum(requests[s].resources.cpu_cores for s in slots)
            > min(f.cpu_cores for f in frees) + 1e-9
        ):
            found.append(f"too many cores on {provider}")
        if sum(requests[s].resources.ram for s in slots) > min(f.ram for f in frees):
            found.append(f"too much RAM on {provider}")
        if sum(requests[s].resources.disk for s in slots) > min(f.disk for f in frees):
            found.append(f"too much disk on {provider}")
        keys = [k for s in slots for k in set(placement[s].gpus)]
        if len(set(keys)) != len(keys):
            found.append(f"a GPU given twice on {provider}")
    for edge in case.edges:
        if not edge.rtt:
            continue
        a, b = edge.edges
        for s, t in itertools.permutations(placement, 2):
            if s.split("#")[0] == a and t.split("#")[0] == b:
                rtt = oracle_rtt(placement[s], placement[t], case.rtt_ms)
                if rtt is None or rtt > edge.rtt:
                    found.append(f"{s}-{t} breaks {edge}")
    return found


def complete_exists(case: Instance) -> bool:
    """Brute force: some choice of one acceptable bid per slot breaks no rule."""
    options: list[list[Bid]] = []
    for request in case.nodes:
        good = {b.provider: b for b in case.bids if acceptable(case, request, b)}
        options.append(list(good.values()))
    slots = [n.node for n in case.nodes]
    return any(
        not violations(case, dict(zip(slots, choice, strict=True)))
        for choice in itertools.product(*options)
    )


QUICK = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@QUICK
@given(instances())
def test_every_placement_keeps_the_rules(case: Instance) -> None:
    selection = run(case)
    requests = {n.node: n for n in case.nodes}
    assert set(selection.placement) | set(selection.unplaced) == set(requests)
    assert not set(selection.placement) & set(selection.unplaced)
    assert selection.complete == (not selection.unplaced)
    for slot, bid in selection.placement.items():
        assert any(bid is received for received in case.bids)
        assert bid.node == slot
        assert acceptable(case, requests[slot], bid)
    assert violations(case, selection.placement) == []


@QUICK
@given(instances())
def test_bid_problem_is_the_hard_filters(case: Instance) -> None:
    for request in case.nodes:
        for bid in case.bids:
            problem = bid_problem(request, bid, exclude=case.exclude, now=NOW)
            assert (problem is None) == acceptable(case, request, bid)


@QUICK
@given(instances())
def test_every_bid_is_accounted_for_once(case: Instance) -> None:
    selection = run(case)
    received = Counter((b.provider, b.node) for b in case.bids)
    placed = Counter((b.provider, slot) for slot, b in selection.placement.items())
    rejected = Counter((r.provider, r.node) for r in selection.rejections)
    assert placed + rejected == received
    assert all(r.reason for r in selection.rejections)
    for slot, why in selection.unplaced.items():
        if any(b.node == slot for b in case.bids):
            assert why.startswith("every bid was rejected: ")
        else:
            assert why == "no bid"


@QUICK
@given(instances())
def test_a_complete_placement_is_found_when_one_exists(case: Instance) -> None:
    selection = run(case)
    event(f"complete: {selection.complete}, slots: {len(case.nodes)}")
    assert selection.complete == complete_exists(case)


@QUICK
@given(planted())
def test_a_hidden_complete_placement_is_found(case: Instance) -> None:
    selection = run(case)
    assert selection.complete, selection.unplaced
    assert violations(case, selection.placement) == []
    requests = {n.node: n for n in case.nodes}
    assert all(acceptable(case, requests[s], b) for s, b in selection.placement.items())
    # A greedy pick would often have failed: the search had to backtrack.
    greedy = select(case.nodes, case.bids, now=NOW, edges=case.edges, budget=0)
    event(f"greedy: {'complete' if greedy.complete else 'incomplete'}")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.integers(0, 2**32), st.randoms(use_true_random=False))
def test_the_same_seed_gives_the_same_selection(
    case: Instance, seed: int, shuffle: random.Random
) -> None:
    first = run(case, seed=seed)
    assert run(case, seed=seed) == first
    # Nor does the order bids arrive in matter, but to the order of the rejections.
    arrived = list(case.bids)
    shuffle.shuffle(arrived)
    again = run(case, seed=seed, bids=arrived)
    assert again.placement == first.placement
    assert again.unplaced == first.unplaced
    assert Counter(again.rejections) == Counter(first.rejections)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_slots=9, max_providers=8))
def test_larger_placements_keep_the_rules(case: Instance) -> None:
    selection = run(case)
    assert violations(case, selection.placement) == []
    received = Counter((b.provider, b.node) for b in case.bids)
    placed = Counter((b.provider, slot) for slot, b in selection.placement.items())
    assert placed + Counter((r.provider, r.node) for r in selection.rejections) == received
