"""Ed25519 identities and strict ``did:key`` encoding (DESIGN §2.1)."""

from __future__ import annotations

import functools
from typing import Final, final

import nacl.bindings
import nacl.exceptions
import nacl.signing
from multiformats import multibase

from .errors import InvalidDid

__all__ = ["Identity", "did_from_public_key", "public_key_from_did", "verify"]

DID_KEY_PREFIX: Final = "did:key:"
# multicodec ``ed25519-pub`` (0xed) as an unsigned varint.
_ED25519_PUB_PREFIX: Final = b"\xed\x01"
_KEY_LEN: Final = 32
_SIG_LEN: Final = 64
_BASE58BTC = multibase.get("base58btc")


def did_from_public_key(public_key: bytes) -> str:
    """Return the ``did:key`` of a 32-byte Ed25519 public key."""
    if len(public_key) != _KEY_LEN:
        raise InvalidDid(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    return DID_KEY_PREFIX + _BASE58BTC.encode(_ED25519_PUB_PREFIX + public_key)


@functools.lru_cache(maxsize=4096)
def public_key_from_did(did: str) -> bytes:
    """Decode a ``did:key`` into its 32-byte Ed25519 public key.

    Strict: the method must be ``key``, the multibase prefix ``z`` (base58btc), the multicodec
    ``ed25519-pub`` and the key exactly 32 bytes. Anything else raises :class:`InvalidDid`.
    """
    if not isinstance(did, str):
        raise InvalidDid(f"a DID is a string, got {type(did).__name__}")
    if not did.startswith(DID_KEY_PREFIX):
        raise InvalidDid(f"not a did:key (must start with 'did:key:'): {did[:60]!r}")
    encoded = did[len(DID_KEY_PREFIX) :]
    if not encoded.startswith("z"):
        raise InvalidDid(
            f"did:key must use multibase base58btc (prefix 'z'), got prefix {encoded[:1]!r}"
        )
    try:
        raw = _BASE58BTC.decode(encoded)
    except Exception as exc:  # multiformats raises assorted ValueError subclasses
        raise InvalidDid(f"did:key is not valid base58btc: {did[:60]!r}") from exc
    if raw[:2] != _ED25519_PUB_PREFIX:
        raise InvalidDid(
            f"did:key multicodec is not ed25519-pub (0xed): starts with {raw[:2].hex() or 'nothing'}"
        )
    key = raw[2:]
    if len(key) != _KEY_LEN:
        raise InvalidDid(f"did:key holds a {len(key)}-byte key; an Ed25519 key is 32 bytes")
    if _BASE58BTC.encode(raw) != encoded:
        # Only the canonical spelling is accepted, so that DIDs can be compared as strings.
        raise InvalidDid(f"did:key is not in canonical base58btc form: {did[:60]!r}")
    return key


def verify(did: str, data: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the Ed25519 signature of ``data`` by the key of ``did``.

    A malformed signature gives ``False``; a malformed DID raises :class:`InvalidDid`, because
    that is a caller's mistake rather than a forgery.
    """
    key = public_key_from_did(did)
    return _verify_raw(key, data, signature)


def _verify_raw(public_key: bytes, data: bytes, signature: bytes) -> bool:
    if len(signature) != _SIG_LEN:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + data, public_key)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


@final
class Identity:
    """An Ed25519 key pair and the ``did:key`` it is known by.

    >>> alice = Identity.from_seed(bytes(32))
    >>> alice.did
    'did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp'
    """

    __slots__ = ("_did", "_public_key", "_secret_key", "_seed")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes | bytearray) or len(seed) != _KEY_LEN:
            raise ValueError("an Ed25519 seed is exactly 32 bytes")
        self._seed = bytes(seed)
        self._public_key, self._secret_key = nacl.bindings.crypto_sign_seed_keypair(self._seed)
        self._did = did_from_public_key(self._public_key)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh identity from the operating system's randomness."""
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """The identity whose private key is the 32-byte ``seed`` (RFC 8032)."""
        return cls(seed)

    @property
    def did(self) -> str:
        """``did:key:z6Mk…``: the principal's public name."""
        return self._did

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        return self._public_key

    @property
    def seed(self) -> bytes:
        """The 32-byte private seed. Keep it secret; the keystore encrypts it at rest."""
        return self._seed

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return nacl.bindings.crypto_sign(data, self._secret_key)[:_SIG_LEN]

    def __repr__(self) -> str:
        return f"Identity({self._did})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other._public_key == self._public_key

    def __hash__(self) -> int:
        return hash(self._public_key)
