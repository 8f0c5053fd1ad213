"""WebSocket: the secure session over binary messages, two systems invoking each other, one
network listening on TCP and WS at once, and what a WS listener does with bad clients."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio_websocket

from nuactor import ActorSystem, Handle, Identity
from nuactor.transport import (
    DialError,
    HandshakeError,
    Network,
    NetworkConfig,
    SecureSession,
    WebSocketStream,
    parse_multiaddr,
)
from nuactor.transport._tcp import bound_address, open_listeners, open_tcp
from nuactor.transport._ws import WS_RESOURCE, ws_accept, ws_connect

from .conftest import AllowAll, echo_actor, eventually

ALICE = Identity.from_seed(bytes([31]) * 32)
BOB = Identity.from_seed(bytes([32]) * 32)
CAROL = Identity.from_seed(bytes([33]) * 32)
WS = ("/ip4/127.0.0.1/tcp/0/ws",)


@asynccontextmanager
async def node(
    identity: Identity, *, listen: tuple[str, ...] = WS
) -> AsyncIterator[tuple[ActorSystem, Network]]:
    network = Network(identity, NetworkConfig(listen=listen))
    async with ActorSystem(identity, AllowAll(), transports=[network]) as system:
        await system.spawn(echo_actor(), name="root")
        yield system, network


# --- the stream adapter -------------------------------------------------------------------------


async def test_secure_session_over_websocket_messages() -> None:
    (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0/ws"))
    address = bound_address(listener, "ws")
    assert str(address).endswith("/ws")
    big = bytes(range(256)) * 4000  # several Noise messages, several WebSocket messages

    async def serve(stream: trio.SocketStream) -> None:
        async with trio.open_nursery() as nursery:
            ws = await ws_accept(nursery, stream)
            session = await SecureSession.accept(ws, BOB)
            message = await session.receive_message()
            await session.send_message(message[::-1])
            await session.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, [listener])
        async with trio.open_nursery() as client:
            tcp = await open_tcp(address)
            ws = await ws_connect(client, tcp, address.host)
            session = await SecureSession.initiate(ws, ALICE, expected_did=BOB.did)
            await session.send_message(big)
            assert await session.receive_message() == big[::-1]
            await session.aclose()
        nursery.cancel_scope.cancel()


async def test_adapter_hands_out_large_messages_in_pieces_and_ends_cleanly() -> None:
    (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0/ws"))
    address = bound_address(listener, "ws")

    async def serve(stream: trio.SocketStream) -> None:
        async with trio.open_nursery() as nursery:
            ws = await ws_accept(nursery, stream)
            await ws.send_all(b"a" * 1000)
            await ws.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, [listener])
        async with trio.open_nursery() as client:
            ws = await ws_connect(client, await open_tcp(address), address.host)
            assert await ws.receive_some(600) == b"a" * 600
            assert await ws.receive_some(600) == b"a" * 400
            assert await ws.receive_some(600) == b""  # a clean close is an end of stream
            await ws.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await ws.receive_some()
        nursery.cancel_scope.cancel()


async def test_a_text_message_breaks_the_stream() -> None:
    (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0/ws"))
    address = bound_address(listener, "ws")
    outcome: list[BaseException] = []

    async def serve(stream: trio.SocketStream) -> None:
        async with trio.open_nursery() as nursery:
            ws = await ws_accept(nursery, stream)
            try:
                await ws.receive_some()
            except trio.BrokenResourceError as exc:
                outcome.append(exc)
            await ws.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, [listener])
        async with trio_websocket.open_websocket(
            "127.0.0.1", address.port, WS_RESOURCE, use_ssl=False
        ) as connection:
            await connection.send_message("hello")
            await eventually(lambda: bool(outcome))
        nursery.cancel_scope.cancel()
    assert "text message" in str(outcome[0])
    assert isinstance(WebSocketStream, type)


# --- two systems --------------------------------------------------------------------------------


async def test_invoke_both_ways_over_websocket() -> None:
    async with node(ALICE) as (alice, alice_net), node(BOB) as (bob, bob_net):
        assert await alice_net.connect(bob_net.addresses[0]) == BOB.did
        reply = await alice.invoke(Handle(BOB.did, "root"), "/echo", {"n": 1})
        assert reply == {"body": {"n": 1}, "sender": ALICE.did}
        reply = await bob.invoke(Handle(ALICE.did, "root"), "/echo", b"\x00" * 700_000)
        assert reply == {"body": b"\x00" * 700_000, "sender": BOB.did}
        assert bob_net.peers()[0].addresses == (alice_net.addresses[0],)
        assert 0 < await alice_net.ping(BOB.did) < 5


async def test_one_network_listens_on_tcp_and_ws() -> None:
    both = ("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0/ws")
    async with (
        node(BOB, listen=both) as (_, bob_net),
        node(ALICE) as (alice, alice_net),
        node(CAROL, listen=("/ip4/127.0.0.1/tcp/0",)) as (carol, carol_net),
    ):
        tcp, ws = bob_net.addresses
        assert ws.endswith("/ws") and not tcp.endswith("/ws")
        await alice_net.connect(ws)
        await carol_net.connect(tcp)
        for system in (alice, carol):
            reply = await system.invoke(Handle(BOB.did, "root"), "/echo", "hi")
            assert reply == {"body": "hi", "sender": system.did}


async def test_bad_websocket_clients_are_turned_away_without_harm() -> None:
    async with node(ALICE) as (alice, alice_net), node(BOB) as (_, bob_net):
        await alice_net.connect(bob_net.addresses[0])
        port = parse_multiaddr(bob_net.addresses[0]).port
        # the wrong resource: HTTP 404
        with pytest.raises(trio_websocket.ConnectionRejected) as caught:
            async with trio_websocket.open_websocket("127.0.0.1", port, "/other", use_ssl=False):
                pass  # pragma: no cover
        assert caught.value.status_code == 404
        # not HTTP at all
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"\x00 not an HTTP request\r\n\r\n")
        with trio.fail_after(5):
            while await stream.receive_some():
                pass
        await stream.aclose()
        # plain TCP dialled at a WS port: the Noise handshake meets HTTP and fails, typed
        with pytest.raises(HandshakeError):
            await alice_net.connect(bob_net.addresses[0].removesuffix("/ws"))
        # WS dialled at a port nobody listens on
        (listener,) = await open_listeners(parse_multiaddr("/ip4/127.0.0.1/tcp/0"))
        closed = bound_address(listener, "ws")
        await listener.aclose()
        with pytest.raises(DialError):
            await alice_net.connect(str(closed))
        await eventually(lambda: bob_net.counters["inbound_failed"] == 3)
        reply = await alice.invoke(Handle(BOB.did, "root"), "/echo", "fine")
        assert reply == {"body": "fine", "sender": ALICE.did}


async def test_a_websocket_server_that_refuses_the_upgrade_is_a_dial_error() -> None:
    async def refuse(request: trio_websocket.WebSocketRequest) -> None:
        await request.reject(403)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(trio_websocket.serve_websocket, refuse, "127.0.0.1", 0, None)
        async with node(ALICE) as (_, alice_net):
            with pytest.raises(DialError, match="403"):
                await alice_net.connect(f"/ip4/127.0.0.1/tcp/{server.port}/ws")
            assert alice_net.counters["dial_failed"] == 1
            assert alice_net.peers() == []
        nursery.cancel_scope.cancel()


async def test_an_oversized_websocket_message_ends_only_that_session() -> None:
    async with node(BOB) as (_, bob_net), node(ALICE) as (alice, alice_net):
        await alice_net.connect(bob_net.addresses[0])
        address = parse_multiaddr(bob_net.addresses[0])
        async with trio.open_nursery() as nursery:
            ws = await ws_connect(nursery, await open_tcp(address), address.host)
            session = await SecureSession.initiate(ws, CAROL, expected_did=BOB.did)
            await eventually(lambda: len(bob_net.peers()) == 2)
            with contextlib.suppress(trio_websocket.ConnectionClosed):  # Bob may hang up first
                await ws._connection.send_message(b"\x00" * (2 * 1024 * 1024))  # over 1 MiB
            # trio-websocket closes with 1009; the stream breaks and the session with it
            await eventually(lambda: bob_net.counters["sessions_ended"] == 1)
            assert not any(r.connected for r in bob_net.peers() if r.did == CAROL.did)
            await trio.aclose_forcefully(session)
            nursery.cancel_scope.cancel()
        reply = await alice.invoke(Handle(BOB.did, "root"), "/echo", "unaffected")
        assert reply == {"body": "unaffected", "sender": ALICE.did}
