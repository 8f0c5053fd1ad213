"""The network layer: peer table, dialling on demand with back-off, reconnection, bootstrap,
peer exchange, pings, duplicate sessions, slow peers, gossip fan-out, and clean shutdown."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import pytest
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from nuactor import Actor, ActorSystem, Handle, Identity, SystemConfig
from nuactor._frames import envelope_frame
from nuactor.errors import Unreachable
from nuactor.transport import (
    BATCH,
    CONTROL,
    ControlMessage,
    GetPeers,
    Hello,
    InvalidAddress,
    Network,
    NetworkConfig,
    PeerRecord,
    Peers,
    Ping,
    PingTimeout,
    Pong,
    Retire,
    SecureSession,
    SessionCorrupted,
    parse_multiaddr,
)
from nuactor.transport._control import decode_control, encode_control
from nuactor.transport._outbox import Outbox
from nuactor.transport._peers import PeerTable, backoff_delay
from nuactor.transport._tcp import bound_address, open_listeners, open_tcp
from nuactor.transport._wire import encode_batch, split_batch

from .conftest import AllowAll, eventually

IDS = [Identity.from_seed(bytes([40 + n]) * 32) for n in range(8)]
# Sorted by DID, so a test can say which side of a pair decides about duplicates.
LOW, HIGH = sorted(IDS[:2], key=lambda identity: identity.did)
TCP = ("/ip4/127.0.0.1/tcp/0",)
FAST = {"backoff_initial": 0.05, "backoff_max": 0.5}


class Tally(Actor):
    """Counts ``/count`` messages per sender; ``/echo`` answers; broadcasts are counted too."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.add_behaviour("/count", self.count)
        self.add_behaviour("/echo", self.echo)
        self.add_behaviour("/news", self.count)

    async def count(self, ctx: Any, body: Any) -> None:
        self.counts[ctx.sender] += 1

    async def echo(self, ctx: Any, body: Any) -> Any:
        return body


class Node:
    def __init__(self, system: ActorSystem, network: Network, tally: Tally) -> None:
        self.system, self.network, self.tally = system, network, tally

    @property
    def did(self) -> str:
        return self.system.did

    @property
    def address(self) -> str:
        return self.network.addresses[0]

    def pinned(self) -> str:
        return f"{self.address}/p2p/{self.did}"

    def links(self, other: Node) -> int:
        peer = self.network._table.get(other.did)
        return 0 if peer is None else len(peer.links)

    def record(self, other: Node) -> PeerRecord | None:
        return next((r for r in self.network.peers() if r.did == other.did), None)


@asynccontextmanager
async def node(
    identity: Identity, *, system: SystemConfig | None = None, **options: Any
) -> AsyncIterator[Node]:
    options.setdefault("listen", TCP)
    network = Network(identity, NetworkConfig(**options))
    async with ActorSystem(identity, AllowAll(), transports=[network], config=system) as actors:
        tally = Tally()
        await actors.spawn(tally, name="root")
        yield Node(actors, network, tally)


async def echo(caller: Node, callee: Node, body: Any = "hi", timeout: float = 5) -> Any:
    return await caller.system.invoke(Handle(callee.did, "root"), "/echo", body, timeout=timeout)


def all_tasks() -> set[trio.lowlevel.Task]:
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None or task in found:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


async def closed_port() -> int:
    """A loopback port nobody listens on (bound once, then released)."""
    (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0"))
    port = bound_address(listener, "tcp").port
    await listener.aclose()
    return port


# --- configuration ------------------------------------------------------------------------------


def test_config_is_checked() -> None:
    with pytest.raises(InvalidAddress):
        NetworkConfig(listen=("/ip4/127.0.0.1/udp/0",))
    with pytest.raises(InvalidAddress, match="no /p2p"):
        NetworkConfig(listen=(f"/ip4/127.0.0.1/tcp/0/p2p/{IDS[0].did}",))
    with pytest.raises(InvalidAddress, match="cannot dial"):
        NetworkConfig(bootstrap=("/ip4/127.0.0.1/tcp/0",))
    with pytest.raises(ValueError, match="queue_size"):
        NetworkConfig(queue_size=0)
    with pytest.raises(ValueError, match="send_timeout"):
        NetworkConfig(send_timeout=0)


async def test_a_network_serves_only_its_own_identity() -> None:
    with pytest.raises(ValueError, match="not"):
        async with ActorSystem(IDS[0], transports=[Network(IDS[1])]):
            pass  # pragma: no cover


# --- the peer table, pings, connect -------------------------------------------------------------


async def test_peer_records_and_ping() -> None:
    async with node(IDS[0]) as a, node(IDS[1]) as b:
        assert a.network.peers() == []
        assert await a.network.connect(b.pinned()) == b.did
        assert await a.network.connect(b.pinned()) == b.did  # already connected: no new session
        assert a.network.counters["sessions_opened"] == 1
        rtt = await a.network.ping(b.did)
        assert 0 < rtt < 1
        record = a.record(b)
        assert record is not None
        assert record.connected and record.rtt == rtt and record.addresses == (b.address,)
        assert record.last_seen is not None
        await eventually(lambda: b.record(a) is not None and b.record(a).connected)  # type: ignore[union-attr]
        with pytest.raises(Unreachable):
            await a.network.ping(IDS[5].did)
        with pytest.raises(InvalidAddress):
            await a.network.connect("/ip4/127.0.0.1/tcp/0")


async def test_ping_times_out_when_the_peer_does_not_answer() -> None:
    async with node(IDS[0]) as a:
        stream = await open_tcp(parse_multiaddr(a.address))
        session = await SecureSession.initiate(stream, IDS[1], expected_did=a.did)
        await eventually(lambda: a.network._table.get(IDS[1].did) is not None)
        with pytest.raises(PingTimeout):
            await a.network.ping(IDS[1].did, timeout=0.2)  # the raw peer never reads
        await session.aclose()


# --- dialling -------------------------------------------------------------------------------------


async def test_send_dials_a_peer_learned_from_peer_exchange() -> None:
    quiet = {"target_peers": 0}  # learn peers, but dial only when there is something to send
    async with node(IDS[0], **quiet) as hub, node(IDS[1], **quiet) as a, node(IDS[2], **quiet) as b:
        await b.network.connect(hub.pinned())
        await eventually(lambda: hub.record(b) is not None and hub.record(b).addresses)  # type: ignore[union-attr]
        await a.network.connect(hub.pinned())
        await eventually(lambda: a.record(b) is not None)
        record = a.record(b)
        assert record is not None and not record.connected
        assert record.addresses == (b.address,)
        assert await echo(a, b) == "hi"  # dialled on demand
        assert a.links(b) == 1


async def test_a_peer_that_joins_later_is_announced_to_earlier_neighbours() -> None:
    """a joins the hub before b does: the hub's hello-time peer list to a cannot name b, and the
    periodic exchange is far off; a must still learn b, from the hub's announcement."""
    quiet = {"target_peers": 0, "exchange_interval": 300.0}
    async with node(IDS[0], **quiet) as hub, node(IDS[1], **quiet) as a, node(IDS[2], **quiet) as b:
        await a.network.connect(hub.pinned())
        await eventually(lambda: hub.record(a) is not None and hub.record(a).connected)  # type: ignore[union-attr]
        assert a.record(b) is None
        await b.network.connect(hub.pinned())
        with trio.fail_after(5):
            await eventually(lambda: a.record(b) is not None)
        record = a.record(b)
        assert record is not None
        assert record.addresses == (b.address,)
        assert await echo(a, b) == "hi"


async def test_send_to_a_dead_peer_backs_off_and_gives_up_in_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    port = await closed_port()
    dead = IDS[3].did
    options = {"backoff_initial": 0.5, "backoff_max": 4.0, "send_timeout": 5.0}
    async with node(IDS[0], bootstrap=(f"/ip4/127.0.0.1/tcp/{port}/p2p/{dead}",), **options) as a:
        start = trio.current_time()
        with pytest.raises(Unreachable):
            await a.network.send(dead, envelope_frame(b"x"))
        assert trio.current_time() - start <= 5.0 + 0.01
        peer = a.network._table.get(dead)
        assert peer is not None and peer.failures >= 3  # 0.5, 1, 2, (4): several rounds
        assert peer.next_dial - trio.current_time() <= 4.0


async def test_a_bootstrap_peer_that_comes_up_late_is_connected(
    autojump_clock: trio.testing.MockClock,
) -> None:
    port = await closed_port()
    late = IDS[3]
    options = {"backoff_initial": 0.5, "backoff_max": 2.0}
    async with node(
        IDS[0], bootstrap=(f"/ip4/127.0.0.1/tcp/{port}/p2p/{late.did}",), **options
    ) as a:
        await trio.sleep(60)  # many failed rounds: the delay is capped at 2 s
        async with node(late, listen=(f"/ip4/127.0.0.1/tcp/{port}",)) as b:
            started = trio.current_time()
            await eventually(lambda: a.links(b) == 1)
            assert trio.current_time() - started <= 2.0 + 0.1
            assert await echo(a, b) == "hi"


async def test_unpinned_bootstrap_learns_the_did() -> None:
    async with node(IDS[1]) as b, node(IDS[0], bootstrap=(b.address,), **FAST) as a:
        await eventually(lambda: a.links(b) == 1 and a.network._bootstrap == {})
        peer = a.network._table.get(b.did)
        assert peer is not None and peer.bootstrap


async def test_a_bootstrap_list_naming_this_node_is_harmless() -> None:
    port = await closed_port()
    own = f"/ip4/127.0.0.1/tcp/{port}"
    async with node(IDS[0], listen=(own,), bootstrap=(own,), **FAST) as a:
        await eventually(lambda: a.network._bootstrap == {})
        assert a.network.peers() == []


async def test_peer_exchange_connects_peers_of_peers() -> None:
    async with node(IDS[0]) as hub:  # noqa: SIM117 - the others need the hub's address
        async with (
            node(IDS[1], bootstrap=(hub.pinned(),), **FAST) as a,
            node(IDS[2], bootstrap=(hub.pinned(),), **FAST) as b,
            node(IDS[3], bootstrap=(hub.pinned(),), **FAST) as c,
        ):
            members = (a, b, c)
            await eventually(
                lambda: all(x.links(y) >= 1 for x in members for y in members if x is not y)
            )
            assert await echo(a, c) == "hi"


# --- drops and reconnection -----------------------------------------------------------------------


async def test_reconnects_after_a_drop() -> None:
    async with node(IDS[0], **FAST) as a, node(IDS[1], **FAST) as b:
        await a.network.connect(b.address)
        assert await echo(a, b) == "hi"
        for link in list(b.network._table.get(a.did).links):  # type: ignore[union-attr]
            link.close()  # a drop, as the other side sees it
        await eventually(lambda: a.links(b) == 0 or a.network.counters["sessions_ended"] >= 1)
        await eventually(lambda: a.links(b) == 1 and b.links(a) == 1)
        assert await echo(a, b, "again") == "again"
        assert await echo(b, a, "back") == "back"


async def test_duplicate_sessions_resolve_to_one_without_losing_frames() -> None:
    total = 300
    for first, second in ((LOW, HIGH), (HIGH, LOW)):
        async with node(first) as a, node(second) as b:

            async def flood(sender: Node, receiver: Node) -> None:
                for _ in range(total):
                    await sender.system.send(Handle(receiver.did, "root"), "/count")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.network.connect, b.address)
                nursery.start_soon(b.network.connect, a.address)
            assert a.network.counters["sessions_opened"] == 2  # both dialled
            async with trio.open_nursery() as nursery:
                nursery.start_soon(flood, a, b)
                nursery.start_soon(flood, b, a)
            await eventually(lambda: a.links(b) == 1 and b.links(a) == 1)
            await eventually(
                lambda: b.tally.counts[a.did] == total and a.tally.counts[b.did] == total
            )
            retired = (
                a.network.counters["sessions_retired"] + b.network.counters["sessions_retired"]
            )
            assert retired == 2  # one session, retired on both ends
            low = a if a.did < b.did else b
            assert low.network.counters["frames_dropped"] == 0


# --- slow peers and fan-out -----------------------------------------------------------------------


async def test_a_peer_that_stops_reading_only_blocks_itself() -> None:
    async with node(IDS[0], queue_size=4, send_timeout=0.5) as a, node(IDS[1]) as b:
        await a.network.connect(b.address)
        stream = await open_tcp(parse_multiaddr(a.address))
        sloth = await SecureSession.initiate(stream, IDS[2], expected_did=a.did)
        await eventually(lambda: a.network._table.get(IDS[2].did) is not None)
        frame = envelope_frame(b"z" * 200_000)
        with pytest.raises(Unreachable, match="stayed full"):
            for _ in range(1000):
                await a.network.send(IDS[2].did, frame)
        assert a.network.counters["send_queue_full"] == 1
        assert await echo(a, b, "unaffected") == "unaffected"
        await sloth.aclose()


async def test_broadcast_reaches_at_most_fanout_neighbours() -> None:
    one_hop = SystemConfig(gossip_hops=1)
    async with (
        node(IDS[0], fanout=2, target_peers=0, system=one_hop) as hub,
        node(IDS[1], system=one_hop, target_peers=0) as a,
        node(IDS[2], system=one_hop, target_peers=0) as b,
        node(IDS[3], system=one_hop, target_peers=0) as c,
        node(IDS[4], system=one_hop, target_peers=0) as d,
    ):
        members = (a, b, c, d)
        for member in members:
            await member.network.connect(hub.address)
            member.system.subscribe("/topic", "root")
        for _ in range(10):
            await hub.system.broadcast("/topic", "/news", None)
        await eventually(lambda: sum(m.tally.counts[hub.did] for m in members) == 20)
        await trio.sleep(0.1)
        assert sum(m.tally.counts[hub.did] for m in members) == 20


# --- limits and shutdown ----------------------------------------------------------------------------


async def test_pending_handshakes_are_bounded() -> None:
    async with node(IDS[0], max_pending_handshakes=1, handshake_timeout=0.5) as a:
        silent = await open_tcp(parse_multiaddr(a.address))  # takes the only handshake slot
        await trio.sleep(0.05)
        refused = await open_tcp(parse_multiaddr(a.address))
        assert await refused.receive_some() == b""
        assert a.network.counters["inbound_refused"] == 1
        assert await silent.receive_some() == b""  # timed out and closed
        async with node(IDS[1]) as b:
            await b.network.connect(a.address)
            assert await echo(b, a) == "hi"
        await silent.aclose()
        await refused.aclose()


async def test_nothing_is_left_running_after_the_system_stops() -> None:
    before = all_tasks()
    async with (
        node(IDS[0], **FAST) as a,
        node(IDS[1], listen=(*TCP, "/ip4/127.0.0.1/tcp/0/ws")) as b,
    ):
        await a.network.connect(b.network.addresses[1])
        await a.network.connect(b.network.addresses[0])
        assert await echo(a, b) == "hi"
        assert len(all_tasks()) > len(before)
    assert all_tasks() == before


# --- wire pieces: control messages, batches, outboxes, back-off ---------------------------------------


def test_control_messages_round_trip() -> None:
    address = parse_multiaddr("/ip4/10.0.0.1/tcp/9000")
    messages: list[ControlMessage] = [
        Hello((address, parse_multiaddr("/dns/n.example/tcp/1/ws"))),
        Peers(((IDS[0].did, (address,)),)),
        GetPeers(),
        Ping(7),
        Pong(2**63 - 1),
        Retire(),
    ]
    for message in messages:
        frame = encode_control(message)
        assert frame[0] == CONTROL
        assert decode_control(frame) == message


def test_control_decoding_drops_what_does_not_parse() -> None:
    def frame(body: object) -> bytes:
        return bytes([CONTROL]) + msgpack.packb(body)

    assert decode_control(frame({"t": "unknown"})) is None
    assert decode_control(frame([1, 2])) is None
    assert decode_control(frame({"t": "ping", "n": -1})) is None
    assert decode_control(frame({"t": "ping", "n": True})) is None
    assert decode_control(b"\x02\xc1") is None  # not msgpack
    assert decode_control(b"\x00" + msgpack.packb({"t": "retire"})) is None  # not a control frame
    assert decode_control(frame({"t": "retire", "extra": 1})) == Retire()
    good = "/ip4/10.0.0.1/tcp/9"
    hello = decode_control(
        frame({"t": "hello", "addrs": [good, "/ip4/bad", 5, "/ip4/1.2.3.4/tcp/0"]})
    )
    assert hello == Hello((parse_multiaddr(good),))
    peers = decode_control(
        frame(
            {
                "t": "peers",
                "peers": [
                    {"did": IDS[0].did, "addrs": [good]},
                    {"did": "did:key:nope", "addrs": [good]},
                    {"did": IDS[1].did, "addrs": []},
                    "junk",
                ],
            }
        )
    )
    assert peers == Peers(((IDS[0].did, (parse_multiaddr(good),)),))


@given(st.binary(max_size=300))
def test_control_decoding_never_raises(data: bytes) -> None:
    decode_control(bytes([CONTROL]) + data)


def test_batches_round_trip_and_refuse_malformed_ones() -> None:
    frames = [b"\x00envelope", b"\x01\x05gossip", encode_control(Ping(1))]
    batch = encode_batch(frames)
    assert batch[0] == BATCH
    assert split_batch(batch) == frames
    for bad in (
        bytes([BATCH]),  # empty
        bytes([BATCH]) + b"\x00\x00",  # a cut length
        bytes([BATCH]) + b"\x00\x00\x00\x00",  # an empty frame
        bytes([BATCH]) + b"\x00\x00\x00\x09\x00",  # runs past the end
        encode_batch([encode_batch([b"\x00x"])]),  # nested
    ):
        with pytest.raises(SessionCorrupted):
            split_batch(bad)


@given(st.binary(max_size=200))
def test_split_batch_raises_only_session_corrupted(data: bytes) -> None:
    try:
        frames = split_batch(bytes([BATCH]) + data)
    except SessionCorrupted:
        return
    assert encode_batch(frames) == bytes([BATCH]) + data


async def test_outbox_bounds_and_waits(autojump_clock: trio.testing.MockClock) -> None:
    outbox = Outbox(2)
    assert outbox.put_nowait(b"a") and outbox.put_nowait(b"bb")
    assert not outbox.put_nowait(b"c")
    assert not await outbox.put(b"c", trio.current_time() + 1)  # no room within the deadline
    async with trio.open_nursery() as nursery:

        async def take_later() -> None:
            await trio.sleep(0.5)
            assert outbox.take(100) == [b"a", b"bb"]

        nursery.start_soon(take_later)
        assert await outbox.put(b"c", trio.current_time() + 1)
    assert outbox.take(100, per_frame=4) == [b"c"]
    outbox.put_nowait(b"x" * 10)
    outbox.put_nowait(b"y" * 10)
    assert outbox.take(5) == [b"x" * 10]  # always at least one
    assert outbox.clear() == 1


def test_backoff_is_exponential_capped_and_jittered() -> None:
    for failures in range(1, 20):
        delay = backoff_delay(failures, 0.5, 30.0)
        nominal = min(30.0, 0.5 * 2 ** (failures - 1))
        assert 0.75 * nominal <= delay <= nominal


def test_the_peer_table_is_bounded_and_keeps_what_matters() -> None:
    table = PeerTable(max_peers=2, queue_size=4)
    first = table.ensure(IDS[0].did)
    assert first is not None
    first.bootstrap = True
    second = table.ensure(IDS[1].did)
    assert second is not None
    second.last_seen = 5.0
    third = table.ensure(IDS[2].did)  # evicts the second: the first is a bootstrap peer
    assert third is not None and table.get(IDS[1].did) is None
    third.outbox.put_nowait(b"queued")
    assert table.ensure(IDS[3].did) is None  # nothing left that may be forgotten
    address = parse_multiaddr("/ip4/10.0.0.1/tcp/1")
    first.add_addresses((address,), confirmed=False)
    first.add_addresses((parse_multiaddr("/ip4/10.0.0.2/tcp/1"),), confirmed=True)
    first.add_addresses(
        tuple(parse_multiaddr(f"/ip4/10.0.1.{n}/tcp/1") for n in range(10)), confirmed=False
    )
    assert len(first.addresses) == 8
    assert str(first.addresses[0]) == "/ip4/10.0.0.2/tcp/1"
    first.forget_address(address.with_did(IDS[0].did))
    assert address not in first.addresses
