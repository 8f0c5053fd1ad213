"""The Noise protocol framework (revision 34), for ``Noise_XX_25519_ChaChaPoly_<hash>``.

Pure and synchronous: these objects turn payloads into Noise messages and back, and never do
I/O, so they can be checked byte for byte against published test vectors. Names follow the
specification (https://noiseprotocol.org/noise.html, §5): :class:`CipherState`,
:class:`SymmetricState` and :class:`HandshakeState`. DH is X25519 and the cipher ChaCha20-Poly1305
(PyNaCl); the hash is pluggable (SHA256, SHA512, BLAKE2s, BLAKE2b).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol, final

import nacl.bindings
import nacl.exceptions
import nacl.utils

from ._errors import DecryptError, FrameTooLarge, HandshakeError, NonceExhausted

__all__ = [
    "DHLEN",
    "MAX_MESSAGE_LEN",
    "MAX_NONCE",
    "MAX_PLAINTEXT_LEN",
    "TAGLEN",
    "CipherState",
    "HandshakeState",
    "HashName",
    "KeyPair",
    "NoiseHash",
    "SymmetricState",
    "x25519",
]

MAX_MESSAGE_LEN: Final = 65535
"""No Noise message, handshake or transport, may be longer (spec §3)."""
TAGLEN: Final = 16
"""The ChaChaPoly authentication tag."""
MAX_PLAINTEXT_LEN: Final = MAX_MESSAGE_LEN - TAGLEN
"""The largest plaintext one transport message can carry."""
DHLEN: Final = 32
"""An X25519 public key."""
MAX_NONCE: Final = 2**64 - 1
"""Reserved by the spec (used only by ``rekey``); reaching it means the key is spent."""

_NONCE: Final = struct.Struct("<4xQ")  # 32 zero bits, then n as 64-bit little-endian (spec §12.3)
_ZEROS32: Final = bytes(32)
_encrypt: Final = nacl.bindings.crypto_aead_chacha20poly1305_ietf_encrypt
_decrypt: Final = nacl.bindings.crypto_aead_chacha20poly1305_ietf_decrypt

HashName = Literal["SHA256", "SHA512", "BLAKE2s", "BLAKE2b"]


class _Digest(Protocol):
    def digest(self) -> bytes: ...


# --- hash functions -----------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class NoiseHash:
    """One of the spec's hash functions (§12.5-12.8), with the HMAC and HKDF built on it."""

    name: str
    hashlen: int
    _digestmod: str  # for hmac.digest (OpenSSL's HMAC uses the right block length for each)
    _new: Callable[[bytes], _Digest]

    @classmethod
    def named(cls, name: HashName) -> NoiseHash:
        """The hash called ``name`` in protocol names."""
        try:
            return _HASHES[name]
        except KeyError:
            raise ValueError(
                f"unknown Noise hash {name!r}; expected one of {list(_HASHES)}"
            ) from None

    def hash(self, data: bytes) -> bytes:
        """HASH(data)."""
        return self._new(data).digest()

    def hmac(self, key: bytes, data: bytes) -> bytes:
        """HMAC-HASH(key, data) (RFC 2104, with the hash's own block length)."""
        return hmac.digest(key, data, self._digestmod)

    def hkdf(self, chaining_key: bytes, ikm: bytes, num_outputs: Literal[2, 3]) -> list[bytes]:
        """HKDF(chaining_key, input_key_material, num_outputs) of spec §4.3."""
        temp_key = self.hmac(chaining_key, ikm)
        out1 = self.hmac(temp_key, b"\x01")
        out2 = self.hmac(temp_key, out1 + b"\x02")
        if num_outputs == 2:
            return [out1, out2]
        return [out1, out2, self.hmac(temp_key, out2 + b"\x03")]


_HASHES: Final[dict[str, NoiseHash]] = {
    "SHA256": NoiseHash("SHA256", 32, "sha256", hashlib.sha256),
    "SHA512": NoiseHash("SHA512", 64, "sha512", hashlib.sha512),
    "BLAKE2s": NoiseHash("BLAKE2s", 32, "blake2s", hashlib.blake2s),
    "BLAKE2b": NoiseHash("BLAKE2b", 64, "blake2b", hashlib.blake2b),
}


# --- X25519 -------------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class KeyPair:
    """An X25519 key pair (the Noise ``s`` or ``e``)."""

    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> KeyPair:
        """GENERATE_KEYPAIR(): a fresh key pair from the operating system's randomness."""
        return cls.from_private(nacl.utils.random(DHLEN))

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        """The key pair of a 32-byte private key (as test vectors give them)."""
        if len(private) != DHLEN:
            raise ValueError("an X25519 private key is 32 bytes")
        return cls(bytes(private), nacl.bindings.crypto_scalarmult_base(bytes(private)))

    def __repr__(self) -> str:
        return f"KeyPair(public={self.public.hex()})"


def x25519(key_pair: KeyPair, public: bytes) -> bytes:
    """DH(key_pair, public_key): the X25519 shared secret.

    A low-order public key (all-zero shared secret) is refused with :class:`HandshakeError`,
    as the spec allows (§12.1); it can only come from a broken or malicious peer.
    """
    try:
        return nacl.bindings.crypto_scalarmult(key_pair.private, public)
    except nacl.exceptions.RuntimeError as exc:
        raise HandshakeError("the peer sent an invalid (low-order) X25519 public key") from exc


# --- CipherState --------------------------------------------------------------------------------


@final
class CipherState:
    """A key ``k`` and a nonce ``n`` (spec §5.1); without a key it passes data through."""

    __slots__ = ("_k", "_n")

    def __init__(self, key: bytes | None = None) -> None:
        self._k: bytes | None = None
        self._n = 0
        if key is not None:
            self.initialize_key(key)

    def initialize_key(self, key: bytes | None) -> None:
        """InitializeKey(key): set ``k`` and reset ``n`` to zero."""
        if key is not None and len(key) != 32:
            raise ValueError("a ChaChaPoly key is 32 bytes")
        self._k = key
        self._n = 0

    def has_key(self) -> bool:
        """HasKey()."""
        return self._k is not None

    @property
    def nonce(self) -> int:
        """The nonce the next message will use."""
        return self._n

    def set_nonce(self, nonce: int) -> None:
        """SetNonce(nonce) (for out-of-order transports, rekeying schemes and tests)."""
        if not 0 <= nonce <= MAX_NONCE:
            raise ValueError("a Noise nonce is an unsigned 64-bit integer")
        self._n = nonce

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """EncryptWithAd(ad, plaintext); raises :class:`NonceExhausted` rather than reuse a nonce."""
        k = self._k
        if k is None:
            return plaintext
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("this cipher state has used all its nonces; start a new session")
        if len(plaintext) > MAX_PLAINTEXT_LEN:
            raise FrameTooLarge(
                f"a Noise message carries at most {MAX_PLAINTEXT_LEN} bytes, got {len(plaintext)}"
            )
        ciphertext = _encrypt(plaintext, ad, _NONCE.pack(n), k)
        self._n = n + 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """DecryptWithAd(ad, ciphertext); on failure ``n`` does not advance."""
        k = self._k
        if k is None:
            return ciphertext
        n = self._n
        if n >= MAX_NONCE:
            raise NonceExhausted("this cipher state has used all its nonces; start a new session")
        if len(ciphertext) > MAX_MESSAGE_LEN:
            raise FrameTooLarge(f"a Noise message is at most {MAX_MESSAGE_LEN} bytes")
        if len(ciphertext) < TAGLEN:
            raise DecryptError("a Noise message is shorter than its authentication tag")
        try:
            plaintext = _decrypt(ciphertext, ad, _NONCE.pack(n), k)
        except nacl.exceptions.CryptoError as exc:
            raise DecryptError("a Noise message failed authentication") from exc
        self._n = n + 1
        return plaintext

    def rekey(self) -> None:
        """Rekey(): ``k`` becomes the first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros)."""
        if self._k is None:
            raise ValueError("cannot rekey a cipher state without a key")
        self._k = _encrypt(_ZEROS32, None, _NONCE.pack(MAX_NONCE), self._k)[:32]


# --- SymmetricState -----------------------------------------------------------------------------


@final
class SymmetricState:
    """The chaining key ``ck``, the handshake hash ``h`` and a :class:`CipherState` (spec §5.2)."""

    __slots__ = ("_ck", "_cs", "_h", "hash")

    def __init__(self, protocol_name: bytes, noise_hash: NoiseHash) -> None:
        """InitializeSymmetric(protocol_name)."""
        self.hash = noise_hash
        if len(protocol_name) <= noise_hash.hashlen:
            self._h = protocol_name.ljust(noise_hash.hashlen, b"\x00")
        else:
            self._h = noise_hash.hash(protocol_name)
        self._ck = self._h
        self._cs = CipherState()

    @property
    def handshake_hash(self) -> bytes:
        """GetHandshakeHash(): ``h``, a unique name for the session (channel binding)."""
        return self._h

    def has_key(self) -> bool:
        """Whether the cipher state has a key (payloads are then encrypted)."""
        return self._cs.has_key()

    def _truncate(self, key: bytes) -> bytes:
        return key[:32]

    def mix_key(self, input_key_material: bytes) -> None:
        """MixKey(input_key_material)."""
        self._ck, temp_k = self.hash.hkdf(self._ck, input_key_material, 2)
        self._cs.initialize_key(self._truncate(temp_k))

    def mix_hash(self, data: bytes) -> None:
        """MixHash(data)."""
        self._h = self.hash.hash(self._h + data)

    def mix_key_and_hash(self, input_key_material: bytes) -> None:
        """MixKeyAndHash(input_key_material) (for PSK modes; XX does not use it)."""
        self._ck, temp_h, temp_k = self.hash.hkdf(self._ck, input_key_material, 3)
        self.mix_hash(temp_h)
        self._cs.initialize_key(self._truncate(temp_k))

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """EncryptAndHash(plaintext)."""
        ciphertext = self._cs.encrypt_with_ad(self._h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """DecryptAndHash(ciphertext)."""
        plaintext = self._cs.decrypt_with_ad(self._h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """Split(): the initiator-to-responder and responder-to-initiator cipher states."""
        temp_k1, temp_k2 = self.hash.hkdf(self._ck, b"", 2)
        return CipherState(self._truncate(temp_k1)), CipherState(self._truncate(temp_k2))


# --- HandshakeState -----------------------------------------------------------------------------

_XX: Final[tuple[tuple[str, ...], ...]] = (
    ("e",),  # -> e
    ("e", "ee", "s", "es"),  # <- e, ee, s, es
    ("s", "se"),  # -> s, se
)


@final
class HandshakeState:
    """One side of a ``Noise_XX_25519_ChaChaPoly_<hash>`` handshake (spec §5.3).

    Messages alternate, the initiator writing first. After the third,
    :attr:`complete` is true and :meth:`split` gives this side's transport cipher states.
    Any error leaves the handshake failed: every later call raises :class:`HandshakeError`.
    ``ephemeral`` is injectable so that published test vectors can be reproduced; otherwise a
    fresh one is generated when the first ``e`` token is written.
    """

    __slots__ = ("_e", "_failed", "_index", "_initiator", "_re", "_rs", "_s", "_ss")

    def __init__(
        self,
        *,
        initiator: bool,
        static: KeyPair,
        prologue: bytes = b"",
        ephemeral: KeyPair | None = None,
        hash_name: HashName = "SHA256",
    ) -> None:
        """Initialize(handshake_pattern=XX, initiator, prologue, s, e) with no pre-messages."""
        noise_hash = NoiseHash.named(hash_name)
        self._ss = SymmetricState(
            f"Noise_XX_25519_ChaChaPoly_{noise_hash.name}".encode(), noise_hash
        )
        self._ss.mix_hash(prologue)
        self._initiator = initiator
        self._s = static
        self._e = ephemeral
        self._rs: bytes | None = None
        self._re: bytes | None = None
        self._index = 0
        self._failed = False

    @property
    def protocol_name(self) -> str:
        """``Noise_XX_25519_ChaChaPoly_<hash>``."""
        return f"Noise_XX_25519_ChaChaPoly_{self._ss.hash.name}"

    @property
    def initiator(self) -> bool:
        """Whether this side started the handshake."""
        return self._initiator

    @property
    def complete(self) -> bool:
        """Whether all three messages have been written or read."""
        return self._index == len(_XX)

    @property
    def writes_next(self) -> bool:
        """Whether the next handshake message is this side's to write."""
        return (self._index % 2 == 0) == self._initiator

    @property
    def remote_static(self) -> bytes | None:
        """The peer's static public key ``rs``, once a message has carried it."""
        return self._rs

    @property
    def handshake_hash(self) -> bytes:
        """``h``; after the handshake it names the session uniquely (channel binding)."""
        return self._ss.handshake_hash

    def _next_pattern(self, writing: bool) -> tuple[str, ...]:
        if self._failed:
            raise HandshakeError("this handshake has failed; it cannot be used again")
        if self.complete:
            raise HandshakeError("the handshake is complete; use the transport cipher states")
        if writing != self.writes_next:
            raise HandshakeError(
                f"out of turn: it is the peer's turn to {'write' if writing else 'read'}"
            )
        return _XX[self._index]

    def _dh_for(self, token: str) -> bytes:
        e, s, re, rs = self._e, self._s, self._re, self._rs
        if token == "ee":
            pair, remote = e, re
        elif token == "es":
            pair, remote = (e, rs) if self._initiator else (s, re)
        else:  # "se"
            pair, remote = (s, re) if self._initiator else (e, rs)
        # The XX pattern guarantees each key is known before a token needs it.
        assert pair is not None
        assert remote is not None
        return x25519(pair, remote)

    def _overhead(self, pattern: tuple[str, ...]) -> int:
        """Bytes the tokens and the payload's tag add to a message, computed before writing."""
        keyed = self._ss.has_key()
        size = 0
        for token in pattern:
            if token == "e":
                size += DHLEN
            elif token == "s":
                size += DHLEN + (TAGLEN if keyed else 0)
            else:
                keyed = True
        return size + (TAGLEN if keyed else 0)

    def write_message(self, payload: bytes) -> bytes:
        """WriteMessage(payload): the next handshake message, carrying ``payload``."""
        pattern = self._next_pattern(writing=True)
        if len(payload) + self._overhead(pattern) > MAX_MESSAGE_LEN:
            raise FrameTooLarge(
                f"handshake payload of {len(payload)} bytes would exceed {MAX_MESSAGE_LEN} bytes"
            )
        try:
            parts: list[bytes] = []
            for token in pattern:
                if token == "e":
                    if self._e is None:
                        self._e = KeyPair.generate()
                    parts.append(self._e.public)
                    self._ss.mix_hash(self._e.public)
                elif token == "s":
                    parts.append(self._ss.encrypt_and_hash(self._s.public))
                else:
                    self._ss.mix_key(self._dh_for(token))
            parts.append(self._ss.encrypt_and_hash(payload))
        except BaseException:
            self._failed = True
            raise
        self._index += 1
        return b"".join(parts)

    def read_message(self, message: bytes) -> bytes:
        """ReadMessage(message): the payload of the peer's next handshake message.

        A short, long, unauthentic or otherwise invalid message raises :class:`HandshakeError`.
        """
        pattern = self._next_pattern(writing=False)
        try:
            payload = self._read(pattern, message)
        except DecryptError as exc:
            self._failed = True
            raise HandshakeError("a handshake message failed authentication") from exc
        except BaseException:
            self._failed = True
            raise
        self._index += 1
        return payload

    def _read(self, pattern: tuple[str, ...], message: bytes) -> bytes:
        if len(message) > MAX_MESSAGE_LEN:
            raise HandshakeError(f"a Noise message is at most {MAX_MESSAGE_LEN} bytes")
        if len(message) < self._overhead(pattern):
            raise HandshakeError(f"handshake message {self._index + 1} is too short")
        view = memoryview(message)
        offset = 0
        for token in pattern:
            if token == "e":
                self._re = bytes(view[offset : offset + DHLEN])
                offset += DHLEN
                self._ss.mix_hash(self._re)
            elif token == "s":
                size = DHLEN + (TAGLEN if self._ss.has_key() else 0)
                self._rs = self._ss.decrypt_and_hash(bytes(view[offset : offset + size]))
                offset += size
            else:
                self._ss.mix_key(self._dh_for(token))
        return self._ss.decrypt_and_hash(bytes(view[offset:]))

    def split(self) -> tuple[CipherState, CipherState]:
        """This side's transport cipher states, as ``(send, receive)``.

        Split() gives (initiator→responder, responder→initiator); the responder's pair is
        swapped so both sides can use the result the same way.
        """
        if self._failed or not self.complete:
            raise HandshakeError("the handshake is not complete")
        c1, c2 = self._ss.split()
        return (c1, c2) if self._initiator else (c2, c1)
