"""TCP: the secure session on real loopback sockets, two actor systems invoking each other,
limits, failed handshakes, and trust on a session (both modes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

import nuactor._envelope
from nuactor import ActorSystem, Envelope, Handle, Identity, SystemConfig
from nuactor._frames import envelope_frame
from nuactor.errors import Unreachable
from nuactor.transport import (
    DialError,
    MessageTooLarge,
    Network,
    NetworkConfig,
    PeerMismatch,
    SecureSession,
    parse_multiaddr,
)
from nuactor.transport._tcp import bound_address, open_listeners, open_tcp

from .conftest import AllowAll, echo_actor, eventually

ALICE = Identity.from_seed(bytes([21]) * 32)
BOB = Identity.from_seed(bytes([22]) * 32)
CAROL = Identity.from_seed(bytes([23]) * 32)
TCP = ("/ip4/127.0.0.1/tcp/0",)


@asynccontextmanager
async def node(
    identity: Identity,
    *,
    listen: tuple[str, ...] = TCP,
    trust_sessions: bool = False,
    **options: Any,
) -> AsyncIterator[tuple[ActorSystem, Network]]:
    network = Network(identity, NetworkConfig(listen=listen, **options))
    config = SystemConfig(trust_sessions=trust_sessions)
    async with ActorSystem(identity, AllowAll(), transports=[network], config=config) as system:
        await system.spawn(echo_actor(), name="root")
        yield system, network


# --- the stream layer -----------------------------------------------------------------------------


async def test_listener_on_port_zero_reports_its_port_and_carries_a_session() -> None:
    (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0"))
    address = bound_address(listener, "tcp")
    assert address.host == "127.0.0.1"
    assert address.port != 0
    received: list[bytes] = []

    async def serve(stream: trio.SocketStream) -> None:
        session = await SecureSession.accept(stream, BOB)
        received.append(await session.receive_message())
        await session.send_message(b"pong:" + session.remote_did.encode())
        await session.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, [listener])
        stream = await open_tcp(address)
        session = await SecureSession.initiate(stream, ALICE, expected_did=BOB.did)
        await session.send_message(b"ping")
        assert await session.receive_message() == b"pong:" + ALICE.did.encode()
        await session.aclose()
        nursery.cancel_scope.cancel()
    assert received == [b"ping"]


async def test_dns4_names_resolve_to_ipv4() -> None:
    (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0"))
    port = bound_address(listener, "tcp").port
    async with listener:
        stream = await open_tcp(parse_multiaddr(f"/dns4/localhost/tcp/{port}"))
        await stream.aclose()


# --- two systems --------------------------------------------------------------------------------


async def test_invoke_both_ways_over_tcp() -> None:
    async with node(ALICE) as (alice, alice_net), node(BOB) as (bob, bob_net):
        assert bob_net.addresses[0].startswith("/ip4/127.0.0.1/tcp/")
        assert not bob_net.addresses[0].endswith("/tcp/0")
        assert await alice_net.connect(bob_net.addresses[0]) == BOB.did
        reply = await alice.invoke(Handle(BOB.did, "root"), "/echo", [1, "two"])
        assert reply == {"body": [1, "two"], "sender": ALICE.did}
        # Bob answers over the session Alice opened, and can call back without dialling.
        reply = await bob.invoke(Handle(ALICE.did, "root"), "/echo", "back")
        assert reply == {"body": "back", "sender": BOB.did}
        assert alice_net.counters["sessions_opened"] == bob_net.counters["sessions_opened"] == 1
        (record,) = alice_net.peers()
        assert record.did == BOB.did and record.connected
        assert record.addresses == (bob_net.addresses[0],)
        (record,) = bob_net.peers()
        assert record.did == ALICE.did and record.connected
        assert record.addresses == (alice_net.addresses[0],)  # learned from Alice's hello


async def test_pinned_address_refuses_another_identity() -> None:
    async with node(ALICE) as (_, alice_net), node(BOB) as (_, bob_net):
        with pytest.raises(PeerMismatch) as caught:
            await alice_net.connect(f"{bob_net.addresses[0]}/p2p/{CAROL.did}")
        assert caught.value.actual == BOB.did
        assert await alice_net.connect(f"{bob_net.addresses[0]}/p2p/{BOB.did}") == BOB.did


async def test_dialling_a_closed_port_is_a_dial_error() -> None:
    (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0"))
    address = bound_address(listener, "tcp")
    await listener.aclose()
    async with node(ALICE) as (alice, alice_net):
        with pytest.raises(DialError):
            await alice_net.connect(str(address))
        with pytest.raises(Unreachable):
            await alice.invoke(Handle(BOB.did, "root"), "/echo", None, timeout=2)


async def test_envelopes_up_to_the_system_limit_pass_and_larger_frames_are_refused() -> None:
    async with node(ALICE) as (alice, alice_net), node(BOB) as (_, bob_net):
        await alice_net.connect(bob_net.addresses[0])
        body = b"x" * (1024 * 1024 - 1024)  # an envelope just under 1 MiB
        reply = await alice.invoke(Handle(BOB.did, "root"), "/echo", body)
        assert reply["body"] == body
        with pytest.raises(MessageTooLarge):
            await alice_net.send(BOB.did, envelope_frame(b"y" * (2 * 1024 * 1024)))
        assert await alice.invoke(Handle(BOB.did, "root"), "/echo", 1) == {
            "body": 1,
            "sender": ALICE.did,
        }


async def test_a_failed_handshake_closes_only_that_connection() -> None:
    async with node(ALICE) as (alice, alice_net), node(BOB) as (_, bob_net):
        await alice_net.connect(bob_net.addresses[0])
        garbage = await open_tcp(parse_multiaddr(bob_net.addresses[0]))
        await garbage.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await garbage.receive_some(100) == b""  # closed by Bob
        await garbage.aclose()
        await eventually(lambda: bob_net.counters["inbound_failed"] == 1)
        assert await alice.invoke(Handle(BOB.did, "root"), "/echo", "still") == {
            "body": "still",
            "sender": ALICE.did,
        }
        async with node(CAROL) as (carol, carol_net):
            await carol_net.connect(bob_net.addresses[0])
            assert (await carol.invoke(Handle(BOB.did, "root"), "/echo", 3))["body"] == 3


# --- trust on a session ---------------------------------------------------------------------------


@pytest.mark.parametrize("trust_sessions", [False, True], ids=["signed", "session"])
async def test_invoke_in_both_trust_modes(
    trust_sessions: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[bytes] = []
    real_verify = nuactor._envelope._verify_raw

    def counting_verify(public_key: bytes, data: bytes, signature: bytes) -> bool:
        verified.append(public_key)
        return real_verify(public_key, data, signature)

    monkeypatch.setattr(nuactor._envelope, "_verify_raw", counting_verify)
    async with (
        node(ALICE, trust_sessions=trust_sessions) as (alice, alice_net),
        node(BOB, trust_sessions=trust_sessions) as (_, bob_net),
    ):
        await alice_net.connect(bob_net.addresses[0])
        verified.clear()
        for n in range(5):
            reply = await alice.invoke(Handle(BOB.did, "root"), "/echo", n)
            assert reply == {"body": n, "sender": ALICE.did}
    # Signed: each request and each reply is verified; on a trusted session, none is.
    assert len(verified) == (0 if trust_sessions else 10)


async def test_a_trusted_session_still_verifies_envelopes_of_other_principals() -> None:
    """Carol's session to Bob is trusted, but an envelope Carol relays from Alice is Alice's:
    Bob verifies it, accepts the genuine one, and refuses it once altered."""
    async with node(BOB, trust_sessions=True) as (bob, bob_net), node(CAROL) as (_, carol_net):
        await carol_net.connect(bob_net.addresses[0])
        genuine = Envelope.build(
            sender=Handle(ALICE.did, "system"), to=Handle(BOB.did, "root"), beh="/echo", body=1
        ).sign(ALICE)
        wire = genuine.encode()
        tampered = wire.replace(b"/echo", b"/echO")
        await carol_net.send(BOB.did, envelope_frame(tampered))
        await carol_net.send(BOB.did, envelope_frame(wire))
        await eventually(lambda: bob.counters["envelopes_in"] == 1)
        assert bob.counters["refused_BadSignature"] == 1
