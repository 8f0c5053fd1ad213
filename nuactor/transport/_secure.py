"""A mutually authenticated, encrypted session over any Trio byte stream.

The handshake is ``Noise_XX_25519_ChaChaPoly_SHA256`` with prologue ``b"nuactor/noise/1"``. Each
side proves its Noise static key with its Ed25519 identity: its handshake payload is msgpack
``{"key": ed25519_pub32, "sig": sig64}``, ``sig`` being the identity's signature over
``b"nuactor-noise-static-key:" + noise_static_pub``. Afterwards each side knows the other's DID,
and every byte is encrypted and authenticated.

The X25519 static key is fresh for every session: it costs one scalar multiplication and one
signature per handshake (small next to the round trips), leaves no long-lived X25519 secret to
store or leak, and needs no cache tied to an identity's lifetime.

Wire format: every Noise message is preceded by its length as 2 bytes, big-endian. An
application message of ``L`` bytes travels as Noise transport messages whose plaintexts are
``len32_be(L) + data[:65515]``, then continuation chunks of at most 65519 bytes, until ``L``
bytes have been carried; a message of up to 65515 bytes costs one AEAD call. See docs/network.md.
"""

from __future__ import annotations

import math
import struct
from typing import Final, final

import msgpack
import trio

from .._identity import Identity, did_from_public_key, public_key_from_did, verify
from ._errors import (
    HandshakeError,
    HandshakeTimeout,
    MessageTimeout,
    MessageTooLarge,
    PeerAuthenticationError,
    PeerMismatch,
    SessionClosed,
    SessionCorrupted,
    TransportError,
)
from ._noise import DHLEN, MAX_PLAINTEXT_LEN, CipherState, HandshakeState, KeyPair

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MESSAGE_TIMEOUT",
    "PROLOGUE",
    "STATIC_KEY_SIGNATURE_PREFIX",
    "SecureSession",
]

PROLOGUE: Final = b"nuactor/noise/1"
"""Mixed into the handshake hash: both sides must be speaking this protocol version."""
STATIC_KEY_SIGNATURE_PREFIX: Final = b"nuactor-noise-static-key:"
"""Domain separation for the identity's signature over its Noise static key."""
DEFAULT_MAX_MESSAGE_SIZE: Final = 1024 * 1024 + 64 * 1024
"""1 MiB (the default envelope limit) plus room for the transport's own framing."""
DEFAULT_HANDSHAKE_TIMEOUT: Final = 10.0
DEFAULT_MESSAGE_TIMEOUT: Final = 60.0

_LEN2: Final = struct.Struct(">H")
_LEN4: Final = struct.Struct(">I")
_FIRST_CHUNK_DATA: Final = MAX_PLAINTEXT_LEN - _LEN4.size  # 65515
_RECEIVE_SIZE: Final = 65536
_SEND_BATCH: Final = 256 * 1024  # flush multi-chunk messages to the stream in pieces this big
_NO_AD: Final = b""


def _frame(noise_message: bytes) -> bytes:
    return _LEN2.pack(len(noise_message)) + noise_message


def _tail(data: bytes | bytearray, start: int) -> bytes:
    """``bytes(data[start:])`` with a single copy."""
    return data[start:] if isinstance(data, bytes) else bytes(memoryview(data)[start:])


# --- the identity proof carried in the handshake --------------------------------------------------


def _identity_payload(identity: Identity, noise_static: bytes) -> bytes:
    signature = identity.sign(STATIC_KEY_SIGNATURE_PREFIX + noise_static)
    packed: bytes = msgpack.packb({"key": identity.public_key, "sig": signature})
    return packed


def _prove_identity(payload: bytes, noise_static: bytes | None) -> str:
    """The DID that ``payload`` proves owns ``noise_static``; or :class:`PeerAuthenticationError`."""
    try:
        decoded = msgpack.unpackb(payload, raw=False)
    except Exception as exc:  # msgpack raises a variety of ValueError/TypeError subclasses
        raise PeerAuthenticationError("the peer's handshake payload is not msgpack") from exc
    if not isinstance(decoded, dict):
        raise PeerAuthenticationError("the peer's handshake payload is not a map")
    key, signature = decoded.get("key"), decoded.get("sig")
    if not isinstance(key, bytes) or len(key) != 32:
        raise PeerAuthenticationError("the peer's handshake payload lacks a 32-byte 'key'")
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise PeerAuthenticationError("the peer's handshake payload lacks a 64-byte 'sig'")
    if noise_static is None:  # pragma: no cover - the XX pattern always delivers it first
        raise HandshakeError("the peer's static key is unknown")
    did = did_from_public_key(key)
    if not verify(did, STATIC_KEY_SIGNATURE_PREFIX + noise_static, signature):
        raise PeerAuthenticationError(
            f"the peer claims to be {did} but its signature over the session key does not verify"
        )
    return did


# --- the session ----------------------------------------------------------------------------------


@final
class SecureSession(trio.abc.AsyncResource):
    """An authenticated, encrypted, message-oriented session over a ``trio.abc.Stream``.

    Make one with :meth:`initiate` (the dialler) or :meth:`accept` (the listener). Any failure
    (a forged or altered byte, a framing violation, an oversized message, a stalled peer, nonce
    exhaustion) closes the underlying stream and raises a :class:`TransportError`; the session
    then refuses all further use with :class:`SessionClosed`. Several tasks may send at once;
    only one may receive at a time.
    """

    __slots__ = (
        "_closed_reason",
        "_deadline",
        "_expected",
        "_handshake_hash",
        "_initiator",
        "_local_did",
        "_max_message_size",
        "_message_timeout",
        "_partial",
        "_rbuf",
        "_receiving",
        "_recv",
        "_remote_did",
        "_send",
        "_send_lock",
        "_stream",
    )

    def __init__(self, stream: trio.abc.Stream, *, initiator: bool, max_message_size: int) -> None:
        """Internal: use :meth:`initiate` or :meth:`accept`."""
        if not 0 <= max_message_size < 2**32:
            raise ValueError("max_message_size must be between 0 and 2**32 - 1")
        self._stream = stream
        self._initiator = initiator
        self._max_message_size = max_message_size
        self._local_did = ""
        self._remote_did = ""
        self._handshake_hash = b""
        self._send = CipherState()
        self._recv = CipherState()
        self._send_lock = trio.Lock()
        self._rbuf = bytearray()
        self._receiving = False
        self._partial: bytearray | None = None  # the message being reassembled
        self._expected = 0  # its declared length
        self._message_timeout: float | None = None  # not during the handshake: it has its own
        self._deadline: float | None = None  # when the message being received must be complete
        self._closed_reason: str | None = None

    # --- construction: the handshake --------------------------------------------------------

    @classmethod
    async def initiate(
        cls,
        stream: trio.abc.Stream,
        identity: Identity,
        *,
        expected_did: str | None = None,
        timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT,
    ) -> SecureSession:
        """Run the handshake as initiator (the side that dialled) and return the session.

        With ``expected_did``, a responder proving any other DID is refused with
        :class:`PeerMismatch` before this side reveals its own identity. A malformed
        ``expected_did`` raises :class:`~nuactor.errors.InvalidDid` before the stream is used.
        """
        if expected_did is not None:
            public_key_from_did(expected_did)
        session = cls(stream, initiator=True, max_message_size=max_message_size)
        await session._handshake(identity, expected_did, timeout, message_timeout)
        return session

    @classmethod
    async def accept(
        cls,
        stream: trio.abc.Stream,
        identity: Identity,
        *,
        timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT,
    ) -> SecureSession:
        """Run the handshake as responder (the side that listened) and return the session."""
        session = cls(stream, initiator=False, max_message_size=max_message_size)
        await session._handshake(identity, None, timeout, message_timeout)
        return session

    async def _handshake(
        self,
        identity: Identity,
        expected_did: str | None,
        limit: float,
        message_timeout: float | None,
    ) -> None:
        try:
            with trio.move_on_after(limit) as scope:
                await self._run_handshake(identity, expected_did)
            if scope.cancelled_caught:
                raise HandshakeTimeout(f"the peer did not complete the handshake in {limit} s")
        except SessionClosed as exc:
            self._closed_reason = f"handshake failed: {exc}"
            await trio.aclose_forcefully(self._stream)
            raise HandshakeError(f"connection lost during the handshake: {exc}") from exc
        except BaseException as exc:
            self._closed_reason = f"handshake failed: {exc!r}"
            await trio.aclose_forcefully(self._stream)
            raise
        self._local_did = identity.did
        self._message_timeout = message_timeout

    async def _run_handshake(self, identity: Identity, expected_did: str | None) -> None:
        static = KeyPair.generate()  # fresh per session (see the module docstring)
        state = HandshakeState(initiator=self._initiator, static=static, prologue=PROLOGUE)
        proof = _identity_payload(identity, static.public)
        if self._initiator:
            await self._write(_frame(state.write_message(b"")))
            remote_did = _prove_identity(
                state.read_message(await self._handshake_frame()), state.remote_static
            )
            if expected_did is not None and remote_did != expected_did:
                raise PeerMismatch(expected_did, remote_did)
            await self._write(_frame(state.write_message(proof)))
        else:
            first = await self._handshake_frame(exact_len=DHLEN)
            state.read_message(first)  # "-> e" with an empty payload, in the clear
            await self._write(_frame(state.write_message(proof)))
            remote_did = _prove_identity(
                state.read_message(await self._handshake_frame()), state.remote_static
            )
        self._remote_did = remote_did
        self._handshake_hash = state.handshake_hash
        self._send, self._recv = state.split()

    async def _handshake_frame(self, exact_len: int | None = None) -> bytes:
        if exact_len is not None:
            while len(self._rbuf) < 2:
                data = await self._fill(2 - len(self._rbuf))
                if not data:
                    raise HandshakeError("the peer closed the connection during the handshake")
                self._rbuf += data
            (declared,) = _LEN2.unpack_from(self._rbuf)
            if declared != exact_len:
                raise HandshakeError(
                    "the peer is not speaking the nuactor secure session protocol "
                    f"(its first message declares {declared} bytes, expected {exact_len})"
                )
        frame = await self._read_frame()
        if frame is None:
            raise HandshakeError("the peer closed the connection during the handshake")
        return frame

    # --- properties -------------------------------------------------------------------------

    @property
    def remote_did(self) -> str:
        """The DID the peer proved in the handshake."""
        return self._remote_did

    @property
    def local_did(self) -> str:
        """This side's DID."""
        return self._local_did

    @property
    def initiator(self) -> bool:
        """Whether this side dialled (ran the handshake as initiator)."""
        return self._initiator

    @property
    def handshake_hash(self) -> bytes:
        """The Noise handshake hash: the same on both ends, unique to this session."""
        return self._handshake_hash

    @property
    def max_message_size(self) -> int:
        """The largest application message this side sends or accepts."""
        return self._max_message_size

    @property
    def closed(self) -> bool:
        """Whether the session is closed (by either side, or after a failure)."""
        return self._closed_reason is not None

    @property
    def stream(self) -> trio.abc.Stream:
        """The underlying (ciphertext) stream."""
        return self._stream

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<SecureSession {self._local_did} <-> {self._remote_did} {state}>"

    # --- closing ----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the session and the underlying stream (idempotent)."""
        if self._closed_reason is None:
            self._closed_reason = "the session was closed by this side"
        await self._stream.aclose()

    async def _fail(self, reason: BaseException) -> None:
        if self._closed_reason is None:
            self._closed_reason = f"the session failed: {str(reason) or type(reason).__name__}"
        await trio.aclose_forcefully(self._stream)

    def _ensure_open(self) -> None:
        if self._closed_reason is not None:
            raise SessionClosed(self._closed_reason)

    # --- sending ----------------------------------------------------------------------------

    async def send_message(self, data: bytes) -> None:
        """Send one application message; safe to call from several tasks at once.

        A message over :attr:`max_message_size` raises :class:`MessageTooLarge` before anything
        is sent (the session stays usable). Any other failure, including cancellation midway
        through a message, closes the session.
        """
        self._ensure_open()
        size = len(data)
        if size > self._max_message_size:
            raise MessageTooLarge(
                f"message of {size} bytes exceeds the session limit of {self._max_message_size}"
            )
        lock = self._send_lock
        try:
            lock.acquire_nowait()  # uncontended: skip the lock's yield; send_all checkpoints
        except trio.WouldBlock:
            await lock.acquire()
        try:
            self._ensure_open()  # another sender may have failed while this one waited
            try:
                if size <= _FIRST_CHUNK_DATA:
                    await self._write(self._seal(_LEN4.pack(size) + data))
                else:
                    await self._send_chunked(data)
            except BaseException as exc:
                await self._fail(exc)
                raise
        finally:
            lock.release()

    def _seal(self, plaintext: bytes) -> bytes:
        ciphertext = self._send.encrypt_with_ad(_NO_AD, plaintext)
        return _LEN2.pack(len(ciphertext)) + ciphertext

    async def _send_chunked(self, data: bytes) -> None:
        view = memoryview(data)
        pending = [self._seal(_LEN4.pack(len(data)) + view[:_FIRST_CHUNK_DATA])]
        pending_size = len(pending[0])
        for offset in range(_FIRST_CHUNK_DATA, len(data), MAX_PLAINTEXT_LEN):
            frame = self._seal(bytes(view[offset : offset + MAX_PLAINTEXT_LEN]))
            pending.append(frame)
            pending_size += len(frame)
            if pending_size >= _SEND_BATCH:
                await self._write(b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            await self._write(b"".join(pending))

    async def _write(self, wire: bytes) -> None:
        try:
            await self._stream.send_all(wire)
        except trio.BrokenResourceError as exc:
            raise SessionClosed("the connection was lost") from exc
        except trio.ClosedResourceError as exc:
            raise SessionClosed(self._closed_reason or "the session is closed") from exc

    # --- receiving --------------------------------------------------------------------------

    async def receive_message(self) -> bytes:
        """Receive the next application message (one receiving task at a time).

        Raises :class:`SessionClosed` when the peer closed the session. Cancelling a receive
        is safe: a partly received message is kept and the next call resumes it.
        """
        self._ensure_open()
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this session")
        self._receiving = True
        try:
            return await self._receive_message()
        except TransportError as exc:
            await self._fail(exc)
            raise
        finally:
            self._receiving = False

    async def _receive_message(self) -> bytes:
        while True:
            frame = await self._read_frame()
            if frame is None:
                raise SessionClosed("the peer closed the session")
            chunk = self._recv.decrypt_with_ad(_NO_AD, frame)
            partial = self._partial
            if partial is None:
                if len(chunk) < _LEN4.size:
                    raise SessionCorrupted("a message's first chunk lacks its length header")
                (expected,) = _LEN4.unpack_from(chunk)
                if expected > self._max_message_size:
                    raise MessageTooLarge(
                        f"the peer announced a message of {expected} bytes; "
                        f"the limit is {self._max_message_size}"
                    )
                carried = len(chunk) - _LEN4.size
                if carried == expected:
                    self._deadline = None
                    return chunk[_LEN4.size :]
                if carried > expected:
                    raise SessionCorrupted("a message carries more bytes than it announced")
                self._partial = bytearray(memoryview(chunk)[_LEN4.size :])
                self._expected = expected
            else:
                if not chunk:
                    raise SessionCorrupted("an empty continuation chunk")
                partial += chunk
                if len(partial) >= self._expected:
                    if len(partial) > self._expected:
                        raise SessionCorrupted("a message carries more bytes than it announced")
                    self._partial = None
                    self._deadline = None
                    return bytes(partial)

    async def _read_frame(self) -> bytes | None:
        """The next Noise message from the stream, or ``None`` on a clean end of stream."""
        buf = self._rbuf
        while True:
            have = len(buf)
            if have >= 2:
                end = 2 + ((buf[0] << 8) | buf[1])
                if have >= end:
                    frame = bytes(buf[2:end])
                    del buf[:end]
                    return frame
                need = end - have
            else:
                need = 2 - have
            data = await self._fill(need)
            if not data:
                if have or self._partial is not None:
                    raise SessionClosed("the peer closed the connection in the middle of a message")
                return None
            if not buf and len(data) >= 2 and len(data) == 2 + ((data[0] << 8) | data[1]):
                return _tail(data, 2)  # the common case: exactly one whole frame arrived
            buf += data

    async def _fill(self, need: int) -> bytes | bytearray:
        """Receive at least one byte (``b""`` at end of stream) for a frame lacking ``need``."""
        deadline = self._deadline
        if (
            deadline is None
            and self._message_timeout is not None
            and (self._rbuf or self._partial is not None)
        ):
            deadline = self._deadline = trio.current_time() + self._message_timeout
        try:
            if deadline is None or deadline == math.inf:
                return await self._stream.receive_some(max(need, _RECEIVE_SIZE))
            with trio.move_on_at(deadline):
                return await self._stream.receive_some(max(need, _RECEIVE_SIZE))
            raise MessageTimeout(
                f"a message started arriving but was not complete within {self._message_timeout} s"
            )
        except trio.BrokenResourceError as exc:
            raise SessionClosed("the connection was lost") from exc
        except trio.ClosedResourceError as exc:
            raise SessionClosed(self._closed_reason or "the session is closed") from exc
