"""Hostile peers against a running network, on real loopback sockets.

Each case ends by showing that the attack cost nothing else: another, honest connection to the
same node still works. The hostile side is built from the public pieces an attacker has too:
raw TCP, the Noise core, the secure session, a relay that sees every byte.
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgpack
import pytest
import trio
import trio.testing

from nuactor import (
    Actor,
    ActorSystem,
    AdmissionPolicy,
    Budget,
    Handle,
    Identity,
    SystemConfig,
)
from nuactor.transport import (
    PROLOGUE,
    STATIC_KEY_SIGNATURE_PREFIX,
    HandshakeError,
    HandshakeState,
    HandshakeTimeout,
    KeyPair,
    Network,
    NetworkConfig,
    PeerMismatch,
    SecureSession,
    SessionClosed,
    Transport,
    TransportHost,
    parse_multiaddr,
)
from nuactor.transport._tcp import bound_address, open_listeners, open_tcp

from .conftest import AllowAll, eventually

BOB = Identity.from_seed(bytes([61]) * 32)
ALICE = Identity.from_seed(bytes([62]) * 32)
CAROL = Identity.from_seed(bytes([63]) * 32)
MALLORY = Identity.from_seed(bytes([64]) * 32)
TCP = ("/ip4/127.0.0.1/tcp/0",)
UNLIMITED = AdmissionPolicy(default=Budget(rate=1e9, burst=1e9, max_concurrent=1024))


class Tally(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.add_behaviour("/count", self.counted)
        self.add_behaviour("/echo", self.echo)

    async def counted(self, ctx: Any, body: Any) -> None:
        self.count += 1

    async def echo(self, ctx: Any, body: Any) -> Any:
        return body


class Node:
    def __init__(self, system: ActorSystem, network: Network, tally: Tally) -> None:
        self.system, self.network, self.tally = system, network, tally
        self.did = system.did

    @property
    def address(self) -> str:
        return self.network.addresses[0]

    @property
    def port(self) -> int:
        return parse_multiaddr(self.address).port


class Recorder(Transport):
    """Wraps a transport and keeps a copy of every frame the system sends through it."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[bytes] = []

    async def run(self, host: TransportHost, *, task_status: trio.TaskStatus[None]) -> None:
        await self.inner.run(host, task_status=task_status)

    def reaches(self, did: str) -> bool:
        return self.inner.reaches(did)

    async def send(self, did: str, frame: bytes) -> None:
        self.sent.append(frame)
        await self.inner.send(did, frame)

    async def broadcast(self, frame: bytes, *, exclude: str | None = None) -> None:
        await self.inner.broadcast(frame, exclude=exclude)

    @property
    def addresses(self) -> list[str]:
        return self.inner.addresses


@asynccontextmanager
async def node(
    identity: Identity,
    *,
    trust_sessions: bool = False,
    record: list[Recorder] | None = None,
    **options: Any,
) -> AsyncIterator[Node]:
    options.setdefault("listen", TCP)
    network = Network(identity, NetworkConfig(**options))
    transport: Transport = network
    if record is not None:
        transport = Recorder(network)
        record.append(transport)
    config = SystemConfig(trust_sessions=trust_sessions, admission=UNLIMITED)
    async with ActorSystem(identity, AllowAll(), transports=[transport], config=config) as system:
        tally = Tally()
        await system.spawn(tally, name="root")
        yield Node(system, network, tally)


async def honest_call_works(target: Node) -> None:
    """A fresh, honest node can still connect to ``target`` and invoke it."""
    async with node(CAROL) as carol:
        await carol.network.connect(target.address)
        reply = await carol.system.invoke(Handle(target.did, "root"), "/echo", "ok", timeout=5)
        assert reply == "ok"


def proof(claimed: Identity, signer: Identity, static: bytes) -> bytes:
    """A handshake payload claiming ``claimed``'s key, signed by ``signer``."""
    packed: bytes = msgpack.packb(
        {"key": claimed.public_key, "sig": signer.sign(STATIC_KEY_SIGNATURE_PREFIX + static)}
    )
    return packed


async def read_noise(stream: trio.abc.Stream, buffer: bytearray) -> bytes:
    while True:
        if len(buffer) >= 2:
            end = 2 + int.from_bytes(buffer[:2], "big")
            if len(buffer) >= end:
                message = bytes(buffer[2:end])
                del buffer[:end]
                return message
        data = await stream.receive_some()
        if not data:
            raise EOFError
        buffer += data


def noise(message: bytes) -> bytes:
    return struct.pack(">H", len(message)) + message


# --- a relay that sees (and may alter) every byte ---------------------------------------------------


class Relay:
    """Forwards TCP connections to ``port``. It may flip the byte at ``flip_at`` of the first
    connection's client-to-server stream, and records that stream."""

    def __init__(self, target: int, *, flip_at: int | None = None) -> None:
        self.target = target
        self.port = 0  # the relay's own, once serving
        self.flip_at = flip_at
        self.upstream = bytearray()
        self.connections = 0

    async def serve(self, *, task_status: trio.TaskStatus[int]) -> None:
        (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0"))
        self.port = bound_address(listener, "tcp").port
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, [listener])

    async def _handle(self, client: trio.SocketStream) -> None:
        first = self.connections == 0
        self.connections += 1
        server = await trio.open_tcp_stream("127.0.0.1", self.target)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pump, client, server, first, nursery.cancel_scope)
            nursery.start_soon(self._pump, server, client, False, nursery.cancel_scope)
        await trio.aclose_forcefully(client)
        await trio.aclose_forcefully(server)

    async def _pump(
        self, src: trio.SocketStream, dst: trio.SocketStream, watched: bool, scope: trio.CancelScope
    ) -> None:
        try:
            while data := await src.receive_some(65536):
                if watched:
                    start = len(self.upstream)
                    self.upstream += data
                    if self.flip_at is not None and start <= self.flip_at < start + len(data):
                        mutable = bytearray(data)
                        mutable[self.flip_at - start] ^= 0x01
                        data = bytes(mutable)
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


@asynccontextmanager
async def relay_to(target: Node, *, flip_at: int | None = None) -> AsyncIterator[Relay]:
    relay = Relay(target.port, flip_at=flip_at)
    async with trio.open_nursery() as nursery:
        await nursery.start(relay.serve)
        yield relay
        nursery.cancel_scope.cancel()


# --- tampering in the middle --------------------------------------------------------------------------


@pytest.mark.parametrize("flip_at", [10, 300, 2000], ids=["handshake", "early", "later"])
async def test_a_relay_flipping_one_byte_makes_the_session_fail_closed(flip_at: int) -> None:
    async with node(BOB) as bob, node(ALICE, backoff_initial=60) as alice:
        relay = Relay(bob.port, flip_at=flip_at)
        async with trio.open_nursery() as nursery:
            proxy_port = await nursery.start(relay.serve)
            via_relay = f"/ip4/127.0.0.1/tcp/{proxy_port}/p2p/{bob.did}"
            try:
                await alice.network.connect(via_relay)
            except HandshakeError:
                assert flip_at < 200  # only a flip inside the handshake fails it
            else:
                # Push enough traffic through for the flipped byte to be in it.
                for _ in range(30):
                    await alice.system.send(Handle(bob.did, "root"), "/count", "x" * 100)
            await eventually(
                lambda: (
                    bob.network.counters["sessions_failed"] + bob.network.counters["inbound_failed"]
                    == 1
                )
            )
            await eventually(lambda: not any(r.connected for r in alice.network.peers()))
            assert bob.tally.count < 30  # what came after the flipped byte was never delivered
            assert bob.system.counters["refused_BadSignature"] == 0  # it failed in the session
            nursery.cancel_scope.cancel()
        await alice.network.connect(bob.address)
        assert await alice.system.invoke(Handle(bob.did, "root"), "/echo", 1, timeout=5) == 1
        await honest_call_works(bob)


# --- identities --------------------------------------------------------------------------------------


async def test_an_impostor_at_a_pinned_address_is_refused_before_alice_reveals_herself() -> None:
    async with node(BOB) as bob, node(MALLORY) as mallory, node(ALICE) as alice:
        with pytest.raises(PeerMismatch) as caught:
            await alice.network.connect(f"{mallory.address}/p2p/{bob.did}")
        assert caught.value.expected == bob.did and caught.value.actual == mallory.did
        await eventually(lambda: mallory.network.counters["inbound_failed"] == 1)
        assert mallory.network.peers() == []  # Mallory never learned who dialled
        await alice.network.connect(bob.address)
        assert await alice.system.invoke(Handle(bob.did, "root"), "/echo", 2, timeout=5) == 2


async def test_a_claimed_key_without_its_signature_is_refused() -> None:
    async with node(BOB) as bob:
        stream = await open_tcp(parse_multiaddr(bob.address))
        static = KeyPair.generate()
        state = HandshakeState(initiator=True, static=static, prologue=PROLOGUE)
        buffer = bytearray()
        await stream.send_all(noise(state.write_message(b"")))
        state.read_message(await read_noise(stream, buffer))
        # Mallory claims to be Alice, but can only sign with her own key.
        await stream.send_all(noise(state.write_message(proof(ALICE, MALLORY, static.public))))
        assert await stream.receive_some() == b""
        await stream.aclose()
        await eventually(lambda: bob.network.counters["inbound_failed"] == 1)
        assert bob.network.peers() == []
        await honest_call_works(bob)


# --- not the protocol ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        os.urandom(4096),
        b"\x00\x20" + bytes(32) + os.urandom(200),  # a plausible first message, then noise
    ],
    ids=["http", "random", "plausible"],
)
async def test_garbage_instead_of_a_handshake(garbage: bytes) -> None:
    async with node(BOB) as bob, node(ALICE) as alice:
        await alice.network.connect(bob.address)
        stream = await open_tcp(parse_multiaddr(bob.address))
        try:
            await stream.send_all(garbage)
            with trio.fail_after(5):
                while await stream.receive_some():
                    pass
        except trio.BrokenResourceError:
            pass  # reset by the peer: closed all the same
        await stream.aclose()
        await eventually(lambda: bob.network.counters["inbound_failed"] == 1)
        assert await alice.system.invoke(Handle(bob.did, "root"), "/echo", 3, timeout=5) == 3
        await honest_call_works(bob)


# --- stalls --------------------------------------------------------------------------------------------


async def test_an_initiator_stalling_mid_handshake_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with node(BOB, handshake_timeout=10) as bob, node(ALICE) as alice:
        stream = await open_tcp(parse_multiaddr(bob.address))
        state = HandshakeState(initiator=True, static=KeyPair.generate(), prologue=PROLOGUE)
        await stream.send_all(noise(state.write_message(b"")))  # then nothing more
        await alice.network.connect(bob.address)  # meanwhile, honest traffic flows
        assert await alice.system.invoke(Handle(bob.did, "root"), "/echo", 4, timeout=5) == 4
        start = trio.current_time()
        with trio.fail_after(30):
            while await stream.receive_some():
                pass
        assert 9 <= trio.current_time() - start <= 11
        await eventually(lambda: bob.network.counters["inbound_failed"] == 1)
        await stream.aclose()
        await honest_call_works(bob)


async def test_a_responder_that_never_answers_times_the_dial_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0"))
    silent = bound_address(listener, "tcp")

    async def never_answer(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, never_answer, [listener])
        async with node(ALICE, handshake_timeout=10) as alice, node(BOB) as bob:
            with pytest.raises(HandshakeTimeout):
                await alice.network.connect(str(silent))
            await alice.network.connect(bob.address)
            assert await alice.system.invoke(Handle(bob.did, "root"), "/echo", 5, timeout=5) == 5
        nursery.cancel_scope.cancel()


async def test_a_peer_stalling_mid_frame_is_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with node(BOB, message_timeout=5) as bob, node(ALICE) as alice:
        await alice.network.connect(bob.address)
        stream = await open_tcp(parse_multiaddr(bob.address))
        session = await SecureSession.initiate(stream, MALLORY, expected_did=bob.did)
        await eventually(lambda: len(bob.network.peers()) == 2)
        await stream.send_all(b"\x01\x00" + b"\x00" * 40)  # 40 of a declared 256 bytes
        with trio.fail_after(30):
            while await stream.receive_some():
                pass
        await eventually(lambda: bob.network.counters["sessions_failed"] == 1)
        assert await alice.system.invoke(Handle(bob.did, "root"), "/echo", 6, timeout=5) == 6
        await session.aclose()


async def test_an_oversized_message_length_closes_the_session_before_buffering() -> None:
    async with node(BOB) as bob, node(ALICE) as alice:
        await alice.network.connect(bob.address)
        stream = await open_tcp(parse_multiaddr(bob.address))
        liar = await SecureSession.initiate(
            stream, MALLORY, expected_did=bob.did, max_message_size=8 * 1024 * 1024
        )
        try:
            await liar.send_message(b"\x00" + bytes(4 * 1024 * 1024))
        except SessionClosed:
            pass  # Bob hung up after the first chunk, while the rest was still being written
        else:
            with trio.fail_after(5):
                try:
                    while await stream.receive_some():
                        pass
                except trio.BrokenResourceError:
                    pass
        await eventually(lambda: bob.network.counters["sessions_failed"] == 1)
        assert bob.system.counters["envelopes_in"] == 0
        assert await alice.system.invoke(Handle(bob.did, "root"), "/echo", 7, timeout=5) == 7
        await trio.aclose_forcefully(liar)


# --- replays -------------------------------------------------------------------------------------------


async def test_ten_thousand_captured_envelopes_replay_to_nothing() -> None:
    total = 10_000
    recorders: list[Recorder] = []
    async with (
        node(BOB, trust_sessions=True) as bob,
        node(ALICE, record=recorders, backoff_initial=60) as alice,
        node(MALLORY) as mallory,
    ):
        (recorder,) = recorders
        async with relay_to(bob) as relay:
            await alice.network.connect(f"/ip4/127.0.0.1/tcp/{relay.port}/p2p/{bob.did}")
            for n in range(total):
                await alice.system.send(Handle(bob.did, "root"), "/count", n)
            await eventually(lambda: bob.tally.count == total, timeout=30)
        captured = bytes(relay.upstream)
        frames = list(recorder.sent)
        assert len(frames) == total
        received = bob.system.counters["envelopes_in"]

        # 1. The encrypted bytes, replayed on a new connection: the handshake cannot complete.
        stream = await open_tcp(parse_multiaddr(bob.address))
        try:
            await stream.send_all(captured)
            with trio.fail_after(5):
                while await stream.receive_some():
                    pass
        except trio.BrokenResourceError:
            pass
        await stream.aclose()
        await eventually(lambda: bob.network.counters["inbound_failed"] == 1)
        assert bob.system.counters["envelopes_in"] == received

        # 2. The envelopes themselves, over Mallory's own legitimate session: verified (they
        # are not hers), then refused as replays.
        await mallory.network.connect(bob.address)
        for frame in frames:
            await mallory.network.send(bob.did, frame)
        await eventually(lambda: bob.system.counters["refused_replay"] == total, timeout=30)

        # 3. And over a fresh session of Alice's own (trusted: not re-verified): replays still.
        await alice.network.connect(bob.address)
        for frame in frames[:1000]:
            await alice.network.send(bob.did, frame)
        await eventually(lambda: bob.system.counters["refused_replay"] == total + 1000)
        assert bob.tally.count == total
        await honest_call_works(bob)
