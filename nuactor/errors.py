"""The one hierarchy of errors that nuactor raises.

Every error a caller can meet derives from :class:`NuactorError`; each names what was wrong
and, where there is something to do about it, what to do.
"""

from __future__ import annotations

__all__ = [
    "ActorCrashed",
    "ActorNameTaken",
    "BadSignature",
    "Busy",
    "CorruptKeyFile",
    "EnvelopeError",
    "EnvelopeExpired",
    "EnvelopeNotYetValid",
    "EnvelopeReplayed",
    "EnvelopeTooLarge",
    "InvalidDid",
    "InvokeTimeout",
    "KeyExists",
    "KeyNotFound",
    "KeystoreError",
    "MalformedEnvelope",
    "NuactorError",
    "RemoteError",
    "SignerMismatch",
    "TrustContextError",
    "Unauthorized",
    "Unreachable",
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


class EnvelopeReplayed(EnvelopeError):
    """An envelope with this sender and id was accepted before (told only to a local relay
    client: a network peer gets no answer to a replay)."""


# --- actors -------------------------------------------------------------------------------------


class Unauthorized(NuactorError):
    """The caller may not invoke this behaviour on this node; the message says why."""


class TrustContextError(NuactorError):
    """A trust context file cannot be read, or an anchor is refused (the message says why)."""


class Busy(NuactorError):
    """The receiver refused the message for now (full mailbox, rate or concurrency limit).

    ``retry_after`` (seconds) is the receiver's hint of when trying again may succeed, if known.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RemoteError(NuactorError):
    """A behaviour raised an exception; ``type`` is its class name, ``message`` its text.

    Also raised for refusals that are not authorisation or load: an unknown actor
    (``type == "UnknownActor"``) or behaviour (``"UnknownBehaviour"``), a malformed request.
    """

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type
        self.message = message


class InvokeTimeout(NuactorError, TimeoutError):
    """No reply arrived within the invoke's timeout."""


class Unreachable(NuactorError):
    """No transport can reach the destination DID."""


class ActorCrashed(NuactorError):
    """An actor failed more often than its supervisor allows; the failure escalated."""


class ActorNameTaken(NuactorError, ValueError):
    """An actor of that name already runs in this system."""
