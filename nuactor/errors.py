"""The one hierarchy of errors that nuactor raises.

Every error a caller can meet derives from :class:`NuactorError`; each names what was wrong
and, where there is something to do about it, what to do.
"""

from __future__ import annotations

__all__ = [
    "BadSignature",
    "CorruptKeyFile",
    "EnvelopeError",
    "EnvelopeExpired",
    "EnvelopeNotYetValid",
    "EnvelopeTooLarge",
    "InvalidDid",
    "KeyExists",
    "KeyNotFound",
    "KeystoreError",
    "MalformedEnvelope",
    "NuactorError",
    "SignerMismatch",
    "WrongPassphrase",
]


class NuactorError(Exception):
    """Base class of every error nuactor raises on purpose."""


# --- identities ---------------------------------------------------------------------------------


class InvalidDid(NuactorError, ValueError):
    """A string is not a ``did:key`` for an Ed25519 public key.

    Raised for a wrong method, a wrong multibase prefix (only ``z``, base58btc, is allowed), a
    multicodec other than ``ed25519-pub`` (0xed), a key that is not 32 bytes, or garbage.
    """


# --- keystore -----------------------------------------------------------------------------------


class KeystoreError(NuactorError):
    """Base class of errors about key files."""


class KeyNotFound(KeystoreError):
    """There is no key file of that name in the keystore."""


class KeyExists(KeystoreError):
    """A key of that name exists already and overwriting it was not asked for."""


class WrongPassphrase(KeystoreError):
    """The passphrase does not open the key file (or the ciphertext was tampered with)."""


class CorruptKeyFile(KeystoreError):
    """The key file is not a keystore file this version can read."""


# --- envelopes ----------------------------------------------------------------------------------


class EnvelopeError(NuactorError):
    """Base class of every way an envelope can be refused."""


class EnvelopeTooLarge(EnvelopeError):
    """The encoded envelope is larger than the receiver's limit (checked before decoding)."""


class MalformedEnvelope(EnvelopeError):
    """The bytes are not an envelope: bad msgpack, a missing key or a wrong type."""


class BadSignature(EnvelopeError):
    """The signature does not verify against the key of the DID in ``from.did``."""


class SignerMismatch(BadSignature):
    """An identity tried to sign an envelope whose ``from.did`` is another principal's."""


class EnvelopeExpired(EnvelopeError):
    """The envelope's ``exp`` has passed (beyond the allowed clock skew)."""


class EnvelopeNotYetValid(EnvelopeError):
    """The envelope was issued in the future, or expires too far ahead to be accepted."""
