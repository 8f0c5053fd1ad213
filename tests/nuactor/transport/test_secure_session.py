"""SecureSession: mutual authentication, round trips, tampering, hostile peers and limits.

Hostile peers are built from the public Noise core (:class:`RawPeer`), so they can say exactly
what a real attacker could: a wrong identity proof, a forged length, a stalled message.
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgpack
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from nuactor import Identity
from nuactor.errors import InvalidDid
from nuactor.transport import (
    MAX_PLAINTEXT_LEN,
    PROLOGUE,
    STATIC_KEY_SIGNATURE_PREFIX,
    CipherState,
    DecryptError,
    HandshakeError,
    HandshakeState,
    HandshakeTimeout,
    KeyPair,
    MessageTimeout,
    MessageTooLarge,
    NonceExhausted,
    PeerAuthenticationError,
    PeerMismatch,
    SecureSession,
    SessionClosed,
    SessionCorrupted,
    TransportError,
)
from nuactor.transport._noise import MAX_NONCE

ALICE = Identity.from_seed(bytes(range(32)))
BOB = Identity.from_seed(bytes(range(1, 33)))
CAROL = Identity.from_seed(bytes(range(2, 34)))
FIRST_CHUNK = MAX_PLAINTEXT_LEN - 4  # data bytes that fit in a message's first Noise message
MiB = 1024 * 1024

# --- helpers ------------------------------------------------------------------------------------


class Outcome:
    """What a concurrently run coroutine returned or raised."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: BaseException | None = None

    async def run(self, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            self.value = await fn()
        except Exception as exc:
            self.error = exc


async def both(
    first: Callable[[], Awaitable[Any]], second: Callable[[], Awaitable[Any]]
) -> tuple[Outcome, Outcome]:
    """Run two coroutines concurrently and collect their outcomes (errors included)."""
    a, b = Outcome(), Outcome()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(a.run, first)
        nursery.start_soon(b.run, second)
    return a, b


async def connect(
    client_stream: trio.abc.Stream,
    server_stream: trio.abc.Stream,
    client: Identity = ALICE,
    server: Identity = BOB,
    **client_options: Any,
) -> tuple[SecureSession, SecureSession]:
    server_options = {k: v for k, v in client_options.items() if k != "expected_did"}
    i, r = await both(
        lambda: SecureSession.initiate(client_stream, client, **client_options),
        lambda: SecureSession.accept(server_stream, server, **server_options),
    )
    assert i.error is None, i.error
    assert r.error is None, r.error
    return i.value, r.value


def proof(identity: Identity, static: bytes, **extra: object) -> bytes:
    packed: bytes = msgpack.packb(
        {"key": identity.public_key, "sig": identity.sign(STATIC_KEY_SIGNATURE_PREFIX + static)}
        | extra
    )
    return packed


class RawPeer:
    """A hand-driven peer: the Noise core plus 2-byte framing, with nothing checked for it."""

    def __init__(self, stream: trio.abc.Stream, *, initiator: bool) -> None:
        self.stream = stream
        self.static = KeyPair.generate()
        self.state = HandshakeState(initiator=initiator, static=self.static, prologue=PROLOGUE)
        self.buf = bytearray()
        self.send = CipherState()
        self.recv = CipherState()

    async def write(self, noise_message: bytes) -> None:
        await self.stream.send_all(struct.pack(">H", len(noise_message)) + noise_message)

    async def read(self) -> bytes:
        while True:
            if len(self.buf) >= 2:
                end = 2 + int.from_bytes(self.buf[:2], "big")
                if len(self.buf) >= end:
                    frame = bytes(self.buf[2:end])
                    del self.buf[:end]
                    return frame
            data = await self.stream.receive_some()
            assert data, "unexpected end of stream"
            self.buf += data

    async def handshake(self, payload: Callable[[bytes], bytes]) -> None:
        """Run XX; ``payload(own_noise_static)`` is this side's identity proof."""
        if self.state.initiator:
            await self.write(self.state.write_message(b""))
            self.state.read_message(await self.read())
            await self.write(self.state.write_message(payload(self.static.public)))
        else:
            self.state.read_message(await self.read())
            await self.write(self.state.write_message(payload(self.static.public)))
            self.state.read_message(await self.read())
        self.send, self.recv = self.state.split()

    async def send_plaintext(self, plaintext: bytes) -> None:
        await self.write(self.send.encrypt_with_ad(b"", plaintext))


async def raw_session(
    client_stream: trio.abc.Stream, server_stream: trio.abc.Stream, **options: Any
) -> tuple[RawPeer, SecureSession]:
    """A well-behaved handshake by a RawPeer (as ALICE) with a real responder (BOB)."""
    peer = RawPeer(client_stream, initiator=True)
    _, r = await both(
        lambda: peer.handshake(lambda static: proof(ALICE, static)),
        lambda: SecureSession.accept(server_stream, BOB, **options),
    )
    assert r.error is None, r.error
    return peer, r.value


Mangler = Callable[[str, int, bytes], bytes | None]


async def relay(
    src: trio.abc.Stream, dst: trio.abc.Stream, direction: str, mangle: Mangler
) -> None:
    """Forward frames from src to dst; ``mangle`` may alter a frame, or withhold it (None)."""
    buf = bytearray()
    index = 0
    try:
        while True:
            data = await src.receive_some()
            if not data:
                await dst.aclose()
                return
            buf += data
            while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                end = 2 + int.from_bytes(buf[:2], "big")
                frame = mangle(direction, index, bytes(buf[:end]))
                del buf[:end]
                index += 1
                if frame is None:
                    await trio.sleep_forever()
                await dst.send_all(frame)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        await dst.aclose()


async def run_relayed(
    mangle: Mangler,
    scenario: Callable[[trio.abc.Stream, trio.abc.Stream], Awaitable[None]],
) -> None:
    """Run ``scenario(client_stream, server_stream)`` with a mangling relay between them."""
    client_end, relay_a = trio.testing.memory_stream_pair()
    relay_b, server_end = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(relay, relay_a, relay_b, "c2s", mangle)
        nursery.start_soon(relay, relay_b, relay_a, "s2c", mangle)
        await scenario(client_end, server_end)
        nursery.cancel_scope.cancel()


def flip(frame: bytes, offset: int) -> bytes:
    return frame[:offset] + bytes([frame[offset] ^ 0x20]) + frame[offset + 1 :]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "tcp"])
async def streams(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[trio.abc.Stream, trio.abc.Stream]]:
    if request.param == "memory":
        a, b = trio.testing.memory_stream_pair()
        yield a, b
        return
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    for listener in listeners:
        await listener.aclose()
    yield client, server
    await client.aclose()
    await server.aclose()


# --- handshake and round trips ------------------------------------------------------------------


async def test_both_sides_learn_each_others_did(
    streams: tuple[trio.abc.Stream, trio.abc.Stream],
) -> None:
    client, server = await connect(*streams)
    assert client.remote_did == BOB.did
    assert server.remote_did == ALICE.did
    assert client.local_did == ALICE.did
    assert server.local_did == BOB.did
    assert client.initiator
    assert not server.initiator
    assert client.handshake_hash == server.handshake_hash
    assert len(client.handshake_hash) == 32
    assert ALICE.did in repr(client)


async def test_each_session_is_unique() -> None:
    first = await connect(*trio.testing.memory_stream_pair())
    second = await connect(*trio.testing.memory_stream_pair())
    assert first[0].handshake_hash != second[0].handshake_hash


@pytest.mark.parametrize(
    "size", [0, 1, 200, FIRST_CHUNK, FIRST_CHUNK + 1, 3 * MAX_PLAINTEXT_LEN, MiB]
)
async def test_round_trip_both_ways(
    streams: tuple[trio.abc.Stream, trio.abc.Stream], size: int
) -> None:
    client, server = await connect(*streams)
    data = bytes(i % 251 for i in range(size))
    for sender, receiver in ((client, server), (server, client)):
        got = await both(lambda s=sender: s.send_message(data), receiver.receive_message)
        assert got[0].error is None
        assert got[1].error is None
        assert type(got[1].value) is bytes
        assert got[1].value == data
    await client.aclose()
    await server.aclose()


async def test_a_small_message_is_one_noise_message() -> None:
    a, b = trio.testing.memory_stream_pair()
    peer, server = await raw_session(a, b)
    await server.send_message(b"x" * 200)
    frame = await peer.read()
    assert len(frame) == 4 + 200 + 16
    assert peer.recv.decrypt_with_ad(b"", frame) == struct.pack(">I", 200) + b"x" * 200


async def test_concurrent_senders_do_not_interleave() -> None:
    client, server = await connect(*trio.testing.memory_stream_pair())
    sizes = [0, 10, FIRST_CHUNK + 7, 100_000]
    expected = {
        bytes([task]) * size + bytes([task, n]) for task in range(6) for n, size in enumerate(sizes)
    }

    async def sender(task: int) -> None:
        for n, size in enumerate(sizes):
            await client.send_message(bytes([task]) * size + bytes([task, n]))

    received = set()
    async with trio.open_nursery() as nursery:
        for task in range(6):
            nursery.start_soon(sender, task)
        for _ in range(len(expected)):
            received.add(await server.receive_message())
    assert received == expected


async def test_only_one_receiver_at_a_time() -> None:
    client, server = await connect(*trio.testing.memory_stream_pair())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.receive_message)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await server.receive_message()
        await client.send_message(b"done")


async def test_aclose_ends_the_session_on_both_sides() -> None:
    client, server = await connect(*trio.testing.memory_stream_pair())
    await client.aclose()
    await client.aclose()  # idempotent
    assert client.closed
    with pytest.raises(SessionClosed):
        await client.send_message(b"x")
    with pytest.raises(SessionClosed):
        await client.receive_message()
    with pytest.raises(SessionClosed, match="peer closed"):
        await server.receive_message()
    assert server.closed


async def test_closing_wakes_a_blocked_receiver() -> None:
    _, server = await connect(*trio.testing.memory_stream_pair())
    outcome = Outcome()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outcome.run, server.receive_message)
        await trio.testing.wait_all_tasks_blocked()
        await server.aclose()
    assert isinstance(outcome.error, SessionClosed)


async def test_async_with_closes() -> None:
    client, server = await connect(*trio.testing.memory_stream_pair())
    async with client:
        await client.send_message(b"hello")
    assert client.closed
    assert await server.receive_message() == b"hello"
    with pytest.raises(SessionClosed):
        await server.receive_message()


async def test_sending_to_a_vanished_peer_closes_the_session() -> None:
    a, b = trio.testing.memory_stream_pair()
    client, _ = await connect(a, b)
    await b.aclose()
    with pytest.raises(SessionClosed, match="lost"):
        await client.send_message(b"anyone there?")
    assert client.closed


async def test_cancelling_a_send_midway_closes_the_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.lockstep_stream_pair()  # send_all waits for the receiver
    client, server = await connect(a, b)
    with trio.move_on_after(1):
        await client.send_message(b"never read")
    assert client.closed
    with pytest.raises(SessionClosed):
        await client.send_message(b"x")
    await server.aclose()


# --- tampering ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "index", "offset", "victim"),
    [
        ("c2s", 0, 1, "server"),  # "-> e": the declared length
        ("c2s", 0, 10, "client"),  # "-> e": the ephemeral key (caught when message 2 arrives)
        ("s2c", 0, 20, "client"),  # "<- e, ee, s, es": the ephemeral key
        ("s2c", 0, 50, "client"),  # ... the encrypted static key
        ("s2c", 0, -1, "client"),  # ... the payload's tag
        ("c2s", 1, 30, "server"),  # "-> s, se": the encrypted static key
        ("c2s", 1, -5, "server"),  # ... the payload
    ],
)
async def test_tampered_handshake_fails_closed(
    direction: str, index: int, offset: int, victim: str
) -> None:
    def mangle(d: str, i: int, frame: bytes) -> bytes:
        return flip(frame, offset % len(frame)) if (d, i) == (direction, index) else frame

    async def scenario(client_end: trio.abc.Stream, server_end: trio.abc.Stream) -> None:
        c, s = await both(
            lambda: SecureSession.initiate(client_end, ALICE),
            lambda: SecureSession.accept(server_end, BOB),
        )
        failed = c if victim == "client" else s
        assert isinstance(failed.error, HandshakeError)
        assert c.value is None or s.value is None
        # Whoever failed closed its stream: nothing more can be sent over it.
        stream = client_end if victim == "client" else server_end
        with pytest.raises(trio.ClosedResourceError):
            await stream.send_all(b"x")

    await run_relayed(mangle, scenario)


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (2, DecryptError),  # the ciphertext
        (-1, DecryptError),  # the tag
        (1, DecryptError),  # the length prefix, made shorter: the frame is cut
    ],
)
@pytest.mark.parametrize("size", [100, FIRST_CHUNK + 100])
async def test_tampered_transport_message_fails_closed(
    offset: int, expected: type[Exception], size: int
) -> None:
    def mangle(d: str, i: int, frame: bytes) -> bytes:
        if (d, i) != ("c2s", 2):  # the first transport frame from the client
            return frame
        if offset == 1:  # lower the length: clear its lowest set bit
            length = int.from_bytes(frame[:2], "big")
            return (length & (length - 1)).to_bytes(2, "big") + frame[2:]
        return flip(frame, offset % len(frame))

    async def scenario(client_end: trio.abc.Stream, server_end: trio.abc.Stream) -> None:
        client, server = await connect(client_end, server_end)
        await client.send_message(b"m" * size)
        with pytest.raises(expected):
            await server.receive_message()
        assert server.closed
        with pytest.raises(SessionClosed):
            await server.receive_message()
        with pytest.raises(SessionClosed):
            await server.send_message(b"x")

    await run_relayed(mangle, scenario)


async def test_replayed_transport_message_is_rejected() -> None:
    seen: list[bytes] = []

    def mangle(d: str, i: int, frame: bytes) -> bytes:
        if d == "c2s" and i == 2:
            seen.append(frame)
        if d == "c2s" and i == 3:
            return seen[0]  # replace the second message with a replay of the first
        return frame

    async def scenario(client_end: trio.abc.Stream, server_end: trio.abc.Stream) -> None:
        client, server = await connect(client_end, server_end)
        await client.send_message(b"one")
        await client.send_message(b"two")
        assert await server.receive_message() == b"one"
        with pytest.raises(DecryptError):
            await server.receive_message()

    await run_relayed(mangle, scenario)


# --- impostors and wrong peers ------------------------------------------------------------------


def _bad_proofs() -> dict[str, Callable[[bytes], bytes]]:
    other_static = KeyPair.generate().public
    sig_alice = ALICE.sign(STATIC_KEY_SIGNATURE_PREFIX + other_static)
    return {
        "claims alice, signed by carol": lambda s: msgpack.packb(
            {"key": ALICE.public_key, "sig": CAROL.sign(STATIC_KEY_SIGNATURE_PREFIX + s)}
        ),
        "replays alice's proof of another key": lambda s: msgpack.packb(
            {"key": ALICE.public_key, "sig": sig_alice}
        ),
        "signs without the domain prefix": lambda s: msgpack.packb(
            {"key": CAROL.public_key, "sig": CAROL.sign(s)}
        ),
        "empty": lambda s: b"",
        "not msgpack": lambda s: b"\xc1garbage",
        "not a map": lambda s: msgpack.packb([CAROL.public_key, CAROL.sign(s)]),
        "missing sig": lambda s: msgpack.packb({"key": CAROL.public_key}),
        "missing key": lambda s: msgpack.packb(
            {"sig": CAROL.sign(STATIC_KEY_SIGNATURE_PREFIX + s)}
        ),
        "key as str": lambda s: msgpack.packb(
            {"key": CAROL.did, "sig": CAROL.sign(STATIC_KEY_SIGNATURE_PREFIX + s)}
        ),
        "short sig": lambda s: msgpack.packb(
            {"key": CAROL.public_key, "sig": CAROL.sign(STATIC_KEY_SIGNATURE_PREFIX + s)[:63]}
        ),
        "short key": lambda s: msgpack.packb(
            {"key": CAROL.public_key[:31], "sig": CAROL.sign(STATIC_KEY_SIGNATURE_PREFIX + s)}
        ),
        "int keys": lambda s: msgpack.packb({1: 2}),
    }


BAD_PROOFS = _bad_proofs()


@pytest.mark.parametrize("name", list(BAD_PROOFS))
@pytest.mark.parametrize("impostor_role", ["initiator", "responder"])
async def test_impostor_is_rejected(name: str, impostor_role: str) -> None:
    a, b = trio.testing.memory_stream_pair()
    if impostor_role == "initiator":
        impostor = RawPeer(a, initiator=True)
        _, honest = await both(
            lambda: impostor.handshake(BAD_PROOFS[name]),
            lambda: SecureSession.accept(b, BOB),
        )
    else:
        impostor = RawPeer(b, initiator=False)
        honest, _ = await both(
            lambda: SecureSession.initiate(a, ALICE),
            lambda: impostor.handshake(BAD_PROOFS[name]),
        )
    assert isinstance(honest.error, PeerAuthenticationError), honest.error


async def test_unknown_payload_keys_are_ignored() -> None:
    a, b = trio.testing.memory_stream_pair()
    peer = RawPeer(a, initiator=True)
    _, r = await both(
        lambda: peer.handshake(lambda s: proof(CAROL, s, future="feature", n=1)),
        lambda: SecureSession.accept(b, BOB),
    )
    assert r.error is None
    assert r.value.remote_did == CAROL.did


async def test_expected_did_mismatch_names_both() -> None:
    a, b = trio.testing.memory_stream_pair()
    c, s = await both(
        lambda: SecureSession.initiate(a, ALICE, expected_did=CAROL.did),
        lambda: SecureSession.accept(b, BOB),
    )
    assert isinstance(c.error, PeerMismatch)
    assert c.error.expected == CAROL.did
    assert c.error.actual == BOB.did
    assert CAROL.did in str(c.error)
    assert BOB.did in str(c.error)
    # The initiator gave up before revealing its identity; the responder just sees it leave.
    assert isinstance(s.error, HandshakeError)


async def test_malformed_expected_did_is_a_caller_error() -> None:
    a, _ = trio.testing.memory_stream_pair()
    with pytest.raises(InvalidDid):
        await SecureSession.initiate(a, ALICE, expected_did="did:web:example.com")


async def test_expected_did_match() -> None:
    client, _ = await connect(*trio.testing.memory_stream_pair(), expected_did=BOB.did)
    assert client.remote_did == BOB.did


async def test_a_peer_that_proves_nothing_cannot_complete_as_responder() -> None:
    # A responder that answers with a well-formed message 2 under another prologue.
    a, b = trio.testing.memory_stream_pair()
    other = HandshakeState(initiator=False, static=KeyPair.generate(), prologue=b"other/1")

    async def wrong_protocol() -> None:
        peer = RawPeer(b, initiator=False)
        peer.state = other
        await peer.handshake(lambda s: proof(BOB, s))

    c, _ = await both(lambda: SecureSession.initiate(a, ALICE), wrong_protocol)
    assert isinstance(c.error, HandshakeError)


# --- garbage and stalls -------------------------------------------------------------------------


async def test_garbage_instead_of_a_handshake_is_refused_at_once() -> None:
    a, b = trio.testing.memory_stream_pair()
    await a.send_all(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    with pytest.raises(HandshakeError, match="not speaking"):
        await SecureSession.accept(b, BOB)


async def test_garbage_as_second_message_is_refused() -> None:
    a, b = trio.testing.memory_stream_pair()

    async def garbage_responder() -> None:
        await b.receive_some()
        await b.send_all(struct.pack(">H", 200) + bytes(200))

    c, _ = await both(lambda: SecureSession.initiate(a, ALICE), garbage_responder)
    assert isinstance(c.error, HandshakeError)


async def test_low_order_ephemeral_key_is_refused() -> None:
    a, b = trio.testing.memory_stream_pair()
    await a.send_all(struct.pack(">H", 32) + bytes(32))  # the identity point: all-zero DH
    with pytest.raises(HandshakeError, match="low-order"):
        await SecureSession.accept(b, BOB)


@pytest.mark.parametrize("sent", [b"", b"\x00", b"\x00\x20" + bytes(10)])
async def test_stalled_handshake_times_out(
    autojump_clock: trio.testing.MockClock, sent: bytes
) -> None:
    a, b = trio.testing.memory_stream_pair()
    await a.send_all(sent)
    start = trio.current_time()
    with pytest.raises(HandshakeTimeout):
        await SecureSession.accept(b, BOB)
    assert trio.current_time() - start == pytest.approx(10.0)
    assert await a.receive_some() == b""  # the responder closed the connection


async def test_silent_responder_times_out(autojump_clock: trio.testing.MockClock) -> None:
    a, b = trio.testing.memory_stream_pair()
    with pytest.raises(HandshakeTimeout):
        await SecureSession.initiate(a, ALICE, timeout=3)
    assert trio.current_time() == pytest.approx(3.0)
    await b.aclose()


async def test_peer_closing_mid_handshake_fails() -> None:
    a, b = trio.testing.memory_stream_pair()
    await a.send_all(b"\x00\x20" + bytes(5))
    await a.aclose()
    with pytest.raises(HandshakeError):
        await SecureSession.accept(b, BOB)


async def test_stall_mid_frame_times_out(autojump_clock: trio.testing.MockClock) -> None:
    a, b = trio.testing.memory_stream_pair()
    peer, server = await raw_session(a, b, message_timeout=5)
    frame = peer.send.encrypt_with_ad(b"", struct.pack(">I", 3) + b"abc")
    await a.send_all(struct.pack(">H", len(frame)) + frame[:7])  # then nothing
    start = trio.current_time()
    with pytest.raises(MessageTimeout):
        await server.receive_message()
    assert trio.current_time() - start == pytest.approx(5.0)
    assert server.closed


async def test_stall_between_chunks_times_out(autojump_clock: trio.testing.MockClock) -> None:
    def mangle(d: str, i: int, frame: bytes) -> bytes | None:
        return None if (d, i) == ("c2s", 3) else frame  # withhold the 2nd chunk of message 1

    async def scenario(client_end: trio.abc.Stream, server_end: trio.abc.Stream) -> None:
        client, server = await connect(client_end, server_end)
        await client.send_message(bytes(FIRST_CHUNK + 1000))
        with pytest.raises(MessageTimeout):
            await server.receive_message()
        assert trio.current_time() == pytest.approx(60.0)

    await run_relayed(mangle, scenario)


async def test_an_idle_session_does_not_time_out(autojump_clock: trio.testing.MockClock) -> None:
    client, server = await connect(*trio.testing.memory_stream_pair(), message_timeout=5)
    with trio.move_on_after(1000):
        await server.receive_message()
    await client.send_message(b"still here")
    assert await server.receive_message() == b"still here"


async def test_cancelled_receive_resumes_a_partial_message(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = trio.testing.memory_stream_pair()
    peer, server = await raw_session(a, b)
    data = bytes(range(256)) * 300
    await peer.send_plaintext(struct.pack(">I", len(data)) + data[:FIRST_CHUNK])
    with trio.move_on_after(1):
        await server.receive_message()
    await peer.send_plaintext(data[FIRST_CHUNK:])
    assert await server.receive_message() == data


async def test_peer_closing_mid_message_is_an_error() -> None:
    a, b = trio.testing.memory_stream_pair()
    peer, server = await raw_session(a, b)
    await peer.send_plaintext(struct.pack(">I", FIRST_CHUNK + 10) + bytes(FIRST_CHUNK))
    await a.aclose()
    with pytest.raises(SessionClosed, match="middle of a message"):
        await server.receive_message()


# --- limits and framing violations --------------------------------------------------------------


async def test_oversized_declared_length_is_refused_without_allocating() -> None:
    a, b = trio.testing.memory_stream_pair()
    peer, server = await raw_session(a, b)
    await peer.send_plaintext(struct.pack(">I", 2**32 - 1) + b"x")
    tracemalloc.start()
    try:
        with pytest.raises(MessageTooLarge, match="4294967295"):
            await server.receive_message()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    assert server.closed


async def test_message_over_the_receivers_limit_is_refused() -> None:
    a, b = trio.testing.memory_stream_pair()
    c, s = await both(
        lambda: SecureSession.initiate(a, ALICE),
        lambda: SecureSession.accept(b, BOB, max_message_size=1000),
    )
    client, server = c.value, s.value
    await client.send_message(bytes(1000))
    assert await server.receive_message() == bytes(1000)
    await client.send_message(bytes(1001))
    with pytest.raises(MessageTooLarge):
        await server.receive_message()


async def test_sending_over_the_limit_is_refused_locally() -> None:
    a, b = trio.testing.memory_stream_pair()
    client, server = await connect(a, b, max_message_size=10)
    with pytest.raises(MessageTooLarge):
        await client.send_message(bytes(11))
    assert not client.closed
    await client.send_message(b"fine")
    assert await server.receive_message() == b"fine"


@pytest.mark.parametrize(
    ("plaintexts", "match"),
    [
        ([b"\x00\x00"], "length header"),
        ([struct.pack(">I", 2) + b"abc"], "more bytes"),
        ([struct.pack(">I", 70_000) + bytes(10), b""], "empty continuation"),
        ([struct.pack(">I", 70_000) + bytes(10), bytes(MAX_PLAINTEXT_LEN), bytes(5000)], "more"),
    ],
)
async def test_framing_violations_are_refused(plaintexts: list[bytes], match: str) -> None:
    a, b = trio.testing.memory_stream_pair()
    peer, server = await raw_session(a, b)
    for plaintext in plaintexts:
        await peer.send_plaintext(plaintext)
    with pytest.raises(SessionCorrupted, match=match):
        await server.receive_message()
    assert server.closed


async def test_a_frame_shorter_than_a_tag_is_refused() -> None:
    a, b = trio.testing.memory_stream_pair()
    _, server = await raw_session(a, b)
    await a.send_all(b"\x00\x03abc")
    with pytest.raises(DecryptError):
        await server.receive_message()


async def test_nonce_exhaustion_closes_the_session() -> None:
    client, server = await connect(*trio.testing.memory_stream_pair())
    client._send.set_nonce(MAX_NONCE - 1)
    server._recv.set_nonce(MAX_NONCE - 1)
    await client.send_message(b"last")
    assert await server.receive_message() == b"last"
    with pytest.raises(NonceExhausted):
        await client.send_message(b"one too many")
    assert client.closed
    with pytest.raises(SessionClosed):
        await client.send_message(b"again")
    with pytest.raises(SessionClosed):
        await server.receive_message()


async def test_receive_side_nonce_exhaustion_closes_the_session() -> None:
    client, server = await connect(*trio.testing.memory_stream_pair())
    server._recv.set_nonce(MAX_NONCE)
    await client.send_message(b"x")
    with pytest.raises(NonceExhausted):
        await server.receive_message()
    assert server.closed


async def test_nonce_exhaustion_mid_message_closes_the_session() -> None:
    client, _ = await connect(*trio.testing.memory_stream_pair())
    client._send.set_nonce(MAX_NONCE - 2)
    with pytest.raises(NonceExhausted):
        await client.send_message(bytes(3 * MAX_PLAINTEXT_LEN))
    assert client.closed


# --- hostile first messages ---------------------------------------------------------------------


async def _accept_after(first: bytes) -> None:
    a, b = trio.testing.memory_stream_pair()
    await a.send_all(first)
    await a.send_eof()
    with trio.fail_after(5):  # never reached: EOF always arrives
        await SecureSession.accept(b, BOB)


framed = st.one_of(
    st.binary(min_size=32, max_size=32),
    st.binary(max_size=200),
).map(lambda body: struct.pack(">H", len(body)) + body)


@settings(max_examples=200, deadline=None)
@given(first=st.one_of(st.binary(max_size=300), framed))
def test_arbitrary_first_message_raises_only_typed_errors(first: bytes) -> None:
    with pytest.raises(HandshakeError):
        trio.run(_accept_after, first)


@settings(max_examples=150, deadline=None)
@given(junk=st.one_of(st.binary(max_size=300), framed))
def test_arbitrary_transport_frames_raise_only_typed_errors(junk: bytes) -> None:
    async def main() -> None:
        a, b = trio.testing.memory_stream_pair()
        _, server = await raw_session(a, b)
        await a.send_all(junk)
        await a.send_eof()
        with pytest.raises(TransportError):
            await server.receive_message()
        assert server.closed

    trio.run(main)
