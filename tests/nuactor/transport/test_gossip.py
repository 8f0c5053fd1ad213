"""Gossip: every subscriber gets a broadcast exactly once, late joiners get later ones, hop
counts and fan-out bound the spread, and relayed envelopes are always verified."""

from __future__ import annotations

import itertools
import random
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio

import nuactor._envelope
from nuactor import (
    Actor,
    ActorSystem,
    Envelope,
    Handle,
    Identity,
    MemoryNetwork,
    SystemConfig,
)
from nuactor._frames import gossip_frame
from nuactor.transport import Network, NetworkConfig

from .conftest import AllowAll, eventually

TOPIC = "/news"


class Reader(Actor):
    """Counts the broadcasts it receives, by body."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[Any] = Counter()
        self.add_behaviour("/news/item", self.item)

    async def item(self, ctx: Any, body: Any) -> None:
        self.seen[body] += 1


def sparse_connected_graph(n: int, rng: random.Random) -> set[tuple[int, int]]:
    """A random tree (each node joins a random earlier one) plus a few random chords."""
    edges = {(rng.randrange(i), i) for i in range(1, n)}
    while len(edges) < n - 1 + n // 5:
        a, b = sorted(rng.sample(range(n), 2))
        edges.add((a, b))
    return edges


def diameter(n: int, edges: set[tuple[int, int]]) -> int:
    neighbours: dict[int, set[int]] = {i: set() for i in range(n)}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    longest = 0
    for start in range(n):
        distance = {start: 0}
        queue = deque([start])
        while queue:
            here = queue.popleft()
            for there in neighbours[here]:
                if there not in distance:
                    distance[there] = distance[here] + 1
                    queue.append(there)
        assert len(distance) == n, "the graph must be connected"
        longest = max(longest, *distance.values())
    return longest


# --- 30 systems on the memory transport ---------------------------------------------------------------


async def test_thirty_systems_each_subscriber_gets_each_broadcast_exactly_once() -> None:
    n = 30
    rng = random.Random(5)
    edges = sparse_connected_graph(n, rng)
    hops = diameter(n, edges)
    config = SystemConfig(gossip_hops=hops)
    identities = [Identity.from_seed(bytes([70, i]) * 16) for i in range(n + 1)]
    subscribed = set(rng.sample(range(n), 20))
    network = MemoryNetwork(seed=1)
    for a, b in edges:
        network.link(identities[a].did, identities[b].did)

    async with AsyncExitStack() as stack:
        systems: list[ActorSystem] = []
        readers: list[Reader] = []
        for identity in identities[:n]:
            system = await stack.enter_async_context(
                ActorSystem(identity, AllowAll(), transports=[network.transport()], config=config)
            )
            reader = Reader()
            await system.spawn(reader, name="reader")
            systems.append(system)
            readers.append(reader)
        for i in subscribed:
            systems[i].subscribe(TOPIC, "reader")

        def delivered(body: Any, among: list[Reader]) -> bool:
            return all(reader.seen[body] >= 1 for reader in among)

        expected = [readers[i] for i in sorted(subscribed)]
        for round_, origin in enumerate(rng.sample(range(n), 3)):
            await systems[origin].broadcast(TOPIC, "/news/item", round_)
            await eventually(lambda body=round_: delivered(body, expected))
        await trio.sleep(0.2)  # let any duplicate arrive
        for i, reader in enumerate(readers):
            assert dict(reader.seen) == ({0: 1, 1: 1, 2: 1} if i in subscribed else {})
        # Every system relayed (or originated) each broadcast once; extra copies were dropped.
        assert all(s.counters["broadcasts_in"] + s.counters["broadcasts_out"] == 3 for s in systems)
        assert sum(s.counters["gossip_duplicates"] for s in systems) > 0  # there were cycles

        # A latecomer linked to two members receives the broadcasts made after it joined.
        late = identities[n]
        for i in rng.sample(range(n), 2):
            network.link(late.did, identities[i].did)
        late_system = await stack.enter_async_context(
            ActorSystem(late, AllowAll(), transports=[network.transport()], config=config)
        )
        late_reader = Reader()
        await late_system.spawn(late_reader, name="reader")
        late_system.subscribe(TOPIC, "reader")
        await systems[rng.randrange(n)].broadcast(TOPIC, "/news/item", "after")
        await eventually(lambda: delivered("after", [*expected, late_reader]))
        await trio.sleep(0.2)
        assert dict(late_reader.seen) == {"after": 1}
        assert all(reader.seen["after"] == 1 for reader in expected)


async def test_the_hop_limit_bounds_how_far_a_broadcast_travels() -> None:
    identities = [Identity.from_seed(bytes([80, i]) * 16) for i in range(6)]
    network = MemoryNetwork()
    for a, b in itertools.pairwise(identities):  # a line of six
        network.link(a.did, b.did)
    config = SystemConfig(gossip_hops=3)
    async with AsyncExitStack() as stack:
        readers = []
        systems = []
        for identity in identities:
            system = await stack.enter_async_context(
                ActorSystem(identity, AllowAll(), transports=[network.transport()], config=config)
            )
            reader = Reader()
            await system.spawn(reader, name="reader")
            system.subscribe(TOPIC, "reader")
            systems.append(system)
            readers.append(reader)
        await systems[0].broadcast(TOPIC, "/news/item", "x")
        await eventually(lambda: readers[3].seen["x"] == 1)
        await trio.sleep(0.2)
        assert [reader.seen["x"] for reader in readers] == [1, 1, 1, 1, 0, 0]


# --- over the network transport ----------------------------------------------------------------------


@asynccontextmanager
async def tcp_node(
    identity: Identity, *, trust_sessions: bool = False, **options: Any
) -> AsyncIterator[tuple[ActorSystem, Network, Reader]]:
    network = Network(identity, NetworkConfig(target_peers=0, **options))
    config = SystemConfig(trust_sessions=trust_sessions)
    async with ActorSystem(identity, AllowAll(), transports=[network], config=config) as system:
        reader = Reader()
        await system.spawn(reader, name="reader")
        system.subscribe(TOPIC, "reader")
        yield system, network, reader


async def test_gossip_over_tcp_reaches_a_ring_exactly_once() -> None:
    identities = [Identity.from_seed(bytes([90, i]) * 16) for i in range(8)]
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(tcp_node(identity)) for identity in identities]
        for (_, here, _), (_, there, _) in zip(nodes, nodes[1:] + nodes[:1], strict=True):
            await here.connect(there.addresses[0])
        for n in range(5):
            await nodes[n][0].broadcast(TOPIC, "/news/item", n)
        await eventually(lambda: all(reader.seen[4] == 1 for _, _, reader in nodes))
        await trio.sleep(0.2)
        for _, _, reader in nodes:
            assert dict(reader.seen) == dict.fromkeys(range(5), 1)


async def test_relayed_gossip_is_verified_on_a_trusted_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alice -> Bob -> Carol, Carol trusting her sessions: Alice's broadcast reaches Carol via
    Bob and Carol checks Alice's signature on it; a copy Bob altered is refused."""
    alice_id, bob_id, carol_id = (Identity.from_seed(bytes([95, i]) * 16) for i in range(3))
    checked: list[bytes] = []
    real_verify = nuactor._envelope._verify_raw

    def spy(public_key: bytes, data: bytes, signature: bytes) -> bool:
        checked.append(public_key)
        return real_verify(public_key, data, signature)

    monkeypatch.setattr(nuactor._envelope, "_verify_raw", spy)
    async with (
        tcp_node(alice_id, trust_sessions=True) as (alice, alice_net, _),
        tcp_node(bob_id, trust_sessions=True) as (_, bob_net, bob_reader),
        tcp_node(carol_id, trust_sessions=True) as (carol, carol_net, carol_reader),
    ):
        await alice_net.connect(bob_net.addresses[0])
        await carol_net.connect(bob_net.addresses[0])
        assert not any(record.did == alice.did for record in carol_net.peers() if record.connected)

        await alice.broadcast(TOPIC, "/news/item", "genuine")
        await eventually(lambda: carol_reader.seen["genuine"] == 1)
        assert bob_reader.seen["genuine"] == 1
        # Bob (direct from Alice) and Carol (relayed by Bob) both verified Alice's signature.
        assert checked.count(alice_id.public_key) == 2

        forged = Envelope.build(
            sender=Handle(alice.did, "system"),
            to=Handle("*", "*"),
            beh="/news/item",
            body="forged",
            topic=TOPIC,
        ).sign(alice_id)
        tampered = forged.encode().replace(b"forged", b"FORGED")
        await bob_net.send(carol.did, gossip_frame(tampered, 3))
        await eventually(lambda: carol.counters["refused_BadSignature"] == 1)
        assert carol_reader.seen["FORGED"] == 0
