"""The signed message that crosses a process boundary (DESIGN §2.2).

An envelope travels as the msgpack array ``[body, sig]``: ``body`` is the msgpack encoding of the
envelope's map, and ``sig`` is Ed25519 over ``SIGNING_CONTEXT + body``. Bytes are signed, not
structures, so no canonical form is needed: the receiver verifies exactly the bytes it got.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any, Final, final

import msgpack

from ._identity import Identity, _verify_raw, public_key_from_did
from .errors import (
    BadSignature,
    EnvelopeExpired,
    EnvelopeNotYetValid,
    EnvelopeTooLarge,
    InvalidDid,
    MalformedEnvelope,
    SignerMismatch,
)

__all__ = [
    "DEFAULT_TTL_MS",
    "MAX_ENVELOPE_SIZE",
    "MAX_FUTURE_EXP_MS",
    "MAX_SKEW_MS",
    "SIGNING_CONTEXT",
    "Envelope",
    "Handle",
    "ReplyTo",
    "now_ms",
]

VERSION: Final = 1
SIGNING_CONTEXT: Final = b"nuactor/envelope/v1\0"
MAX_ENVELOPE_SIZE: Final = 1 << 20
DEFAULT_TTL_MS: Final = 30_000
MAX_SKEW_MS: Final = 60_000
MAX_FUTURE_EXP_MS: Final = 5 * 60_000
_ID_LEN: Final = 16
_SIG_LEN: Final = 64


def now_ms() -> int:
    """Milliseconds since the Unix epoch: the unit of ``iat`` and ``exp``."""
    return time.time_ns() // 1_000_000


@final
@dataclass(frozen=True, slots=True)
class Handle:
    """Where an actor lives: the DID of the system hosting it and the actor's name (inbox)."""

    did: str
    actor: str

    def __str__(self) -> str:
        return f"{self.actor}@{self.did}"


@final
@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where the receiver should send its reply: an actor and the behaviour that takes it."""

    did: str
    actor: str
    beh: str


@final
@dataclass(slots=True)
class Envelope:
    """One message: who sent it to whom, what it asks (``beh``) and with what (``body``).

    Build one with :meth:`build`, sign it with :meth:`sign`, put it on the wire with
    :meth:`encode`; a receiver gets it back, verified, with :meth:`decode`.

    Treat an envelope as a value and never change its fields: it is not frozen only because a
    frozen dataclass costs seven times as much to build, and envelopes are built per message.
    """

    id: bytes
    sender: Handle
    to: Handle
    beh: str
    body: Any
    iat: int
    exp: int
    re: ReplyTo | None = None
    cor: bytes | None = None
    topic: str | None = None
    prf: tuple[bytes, ...] = ()
    tok: tuple[bytes, ...] = ()
    #: The signed msgpack map and its signature; ``None`` until :meth:`sign`.
    signed_body: bytes | None = dataclasses.field(default=None, repr=False, compare=False)
    signature: bytes | None = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        *,
        sender: Handle,
        to: Handle,
        beh: str,
        body: Any = None,
        ttl_ms: int = DEFAULT_TTL_MS,
        now: int | None = None,
        re: ReplyTo | None = None,
        cor: bytes | None = None,
        topic: str | None = None,
        prf: tuple[bytes, ...] = (),
        tok: tuple[bytes, ...] = (),
        id: bytes | None = None,
    ) -> Envelope:
        """A new, unsigned envelope with a random id, issued now and expiring ``ttl_ms`` later."""
        iat = time.time_ns() // 1_000_000 if now is None else now
        if ttl_ms <= 0:
            raise ValueError("ttl_ms must be positive")
        # Positional and without needless copies: this runs for every message sent.
        return cls(
            os.urandom(_ID_LEN) if id is None else id,
            sender,
            to,
            beh,
            body,
            iat,
            iat + ttl_ms,
            re,
            cor,
            topic,
            prf if type(prf) is tuple else tuple(prf),
            tok if type(tok) is tuple else tuple(tok),
        )

    @property
    def is_signed(self) -> bool:
        return self.signature is not None

    def to_map(self) -> dict[str, Any]:
        """The envelope's map, as it is msgpack-encoded and signed."""
        re = self.re
        return {
            "v": VERSION,
            "id": self.id,
            "from": {"did": self.sender.did, "actor": self.sender.actor},
            "to": {"did": self.to.did, "actor": self.to.actor},
            "beh": self.beh,
            "body": self.body,
            "iat": self.iat,
            "exp": self.exp,
            "re": None if re is None else {"did": re.did, "actor": re.actor, "beh": re.beh},
            "cor": self.cor,
            "topic": self.topic,
            "prf": list(self.prf),
            "tok": list(self.tok),
        }

    def sign(self, identity: Identity) -> Envelope:
        """Sign the envelope as ``identity``, which must be the principal in ``from.did``.

        Returns the envelope itself. Ed25519 is deterministic, so signing is done once and the
        signature kept: signing again gives the same bytes.
        """
        if self.signature is not None:
            if identity.did != self.sender.did:
                raise SignerMismatch(
                    f"{identity.did} cannot sign an envelope from {self.sender.did}"
                )
            return self
        if identity.did != self.sender.did:
            raise SignerMismatch(
                f"{identity.did} cannot sign an envelope from {self.sender.did}: "
                "build it with sender=Handle(identity.did, ...)"
            )
        try:
            # A fresh small-buffered Packer is thread-safe and cheaper than packb's defaults.
            signed_body = msgpack.Packer(use_bin_type=True, buf_size=1024).pack(self.to_map())
        except (TypeError, ValueError, OverflowError) as exc:
            raise MalformedEnvelope(f"the body cannot be encoded as msgpack: {exc}") from exc
        signature = identity.sign(SIGNING_CONTEXT + signed_body)
        self.signed_body = signed_body
        self.signature = signature
        return self

    def encode(self) -> bytes:
        """The wire form ``[body, sig]``; the envelope must have been signed."""
        signed_body, signature = self.signed_body, self.signature
        if signed_body is None or signature is None:
            raise ValueError("sign the envelope before encoding it")
        return b"".join(
            (b"\x92", _bin_header(len(signed_body)), signed_body, _SIG_HEADER, signature)
        )

    @classmethod
    def decode(
        cls,
        data: bytes | bytearray | memoryview,
        *,
        max_size: int = MAX_ENVELOPE_SIZE,
        now: int | None = None,
        skew_ms: int = MAX_SKEW_MS,
        max_future_exp_ms: int = MAX_FUTURE_EXP_MS,
        verify_signature: bool = True,
    ) -> Envelope:
        """Check and decode an encoded envelope, in this order: size, shape, signature, time.

        Raises a subclass of :class:`~nuactor.errors.EnvelopeError` for every way the bytes
        can be bad. ``verify_signature=False`` is for a transport that has already
        authenticated ``from.did`` (see the network docs); the signature must still be present.
        """
        if len(data) > max_size:
            raise EnvelopeTooLarge(
                f"envelope of {len(data)} bytes exceeds the limit of {max_size} bytes"
            )
        signed_body, signature = _split_outer(data)
        fields = _unpack_map(signed_body)
        sender = _handle(fields, "from")
        try:
            key = public_key_from_did(sender.did)
        except InvalidDid as exc:
            raise MalformedEnvelope(f"'from.did' is not a valid did:key: {exc}") from exc
        if verify_signature and not _verify_raw(key, SIGNING_CONTEXT + signed_body, signature):
            raise BadSignature(
                f"signature does not verify against from.did {sender.did}: "
                "the envelope was altered or not signed by the sender it names"
            )
        envelope = _envelope_from_map(fields, sender, signed_body, signature)
        check_time(envelope, now=now, skew_ms=skew_ms, max_future_exp_ms=max_future_exp_ms)
        return envelope


def check_time(
    envelope: Envelope,
    *,
    now: int | None = None,
    skew_ms: int = MAX_SKEW_MS,
    max_future_exp_ms: int = MAX_FUTURE_EXP_MS,
) -> None:
    """Refuse an envelope that has expired, was issued in the future, or lives too long."""
    t = now_ms() if now is None else now
    if envelope.exp < t - skew_ms:
        raise EnvelopeExpired(
            f"envelope {envelope.id.hex()} expired {t - envelope.exp} ms ago "
            f"(allowed clock skew {skew_ms} ms)"
        )
    if envelope.iat > t + skew_ms:
        raise EnvelopeNotYetValid(
            f"envelope {envelope.id.hex()} was issued {envelope.iat - t} ms in the future "
            f"(allowed clock skew {skew_ms} ms): check the sender's clock"
        )
    if envelope.exp > t + max_future_exp_ms + skew_ms:
        raise EnvelopeNotYetValid(
            f"envelope {envelope.id.hex()} expires {envelope.exp - t} ms from now; "
            f"at most {max_future_exp_ms} ms is accepted"
        )
    if envelope.exp < envelope.iat:
        raise MalformedEnvelope(f"envelope {envelope.id.hex()} expires before it was issued")


_SIG_HEADER: Final = b"\xc4\x40"  # msgpack bin 8 of 64 bytes


def _bin_header(length: int) -> bytes:
    """The msgpack ``bin`` header for a byte string of ``length`` bytes."""
    if length < 0x100:
        return b"\xc4" + length.to_bytes(1, "big")
    if length < 0x10000:
        return b"\xc5" + length.to_bytes(2, "big")
    return b"\xc6" + length.to_bytes(4, "big")


# --- decoding helpers ----------------------------------------------------------------------------


def _split_outer(data: bytes | bytearray | memoryview) -> tuple[bytes, bytes]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedEnvelope(f"an envelope is bytes, got {type(data).__name__}")
    try:
        outer = msgpack.unpackb(data, use_list=False, raw=False)
    except Exception as exc:  # msgpack raises a zoo of exception types on bad input
        raise MalformedEnvelope(f"not a msgpack envelope: {exc}") from exc
    if not (isinstance(outer, tuple) and len(outer) == 2):
        raise MalformedEnvelope("an envelope is the msgpack array [body, sig]")
    signed_body, signature = outer
    if not isinstance(signed_body, bytes):
        raise MalformedEnvelope("envelope body must be msgpack bin (the encoded map)")
    if not isinstance(signature, bytes) or len(signature) != _SIG_LEN:
        raise MalformedEnvelope("envelope signature must be 64 bytes of bin")
    return signed_body, signature


def _unpack_map(signed_body: bytes) -> dict[str, Any]:
    try:
        fields = msgpack.unpackb(signed_body, raw=False)
    except Exception as exc:
        raise MalformedEnvelope(f"envelope body is not valid msgpack: {exc}") from exc
    if not isinstance(fields, dict):
        raise MalformedEnvelope("envelope body must be a msgpack map")
    version = fields.get("v")
    if version != VERSION:
        raise MalformedEnvelope(f"unsupported envelope version {version!r} (this reads 1)")
    return fields


def _field(fields: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    try:
        value = fields[key]
    except KeyError:
        raise MalformedEnvelope(f"envelope is missing '{key}'") from None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MalformedEnvelope(f"envelope '{key}' has the wrong type ({type(value).__name__})")
    return value


def _handle(fields: dict[str, Any], key: str) -> Handle:
    value = _field(fields, key, dict)
    did, actor = value.get("did"), value.get("actor")
    if not isinstance(did, str) or not isinstance(actor, str):
        raise MalformedEnvelope(f"envelope '{key}' must be {{did: str, actor: str}}")
    return Handle(did, actor)


def _optional(fields: dict[str, Any], key: str, kind: type) -> Any:
    value = fields.get(key)
    if value is not None and not isinstance(value, kind):
        raise MalformedEnvelope(f"envelope '{key}' has the wrong type ({type(value).__name__})")
    return value


def _bytes_list(fields: dict[str, Any], key: str) -> tuple[bytes, ...]:
    value = fields.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, bytes) for item in value):
        raise MalformedEnvelope(f"envelope '{key}' must be a list of bin")
    return tuple(value)


def _envelope_from_map(
    fields: dict[str, Any], sender: Handle, signed_body: bytes, signature: bytes
) -> Envelope:
    msg_id = _field(fields, "id", bytes)
    if len(msg_id) != _ID_LEN:
        raise MalformedEnvelope(f"envelope 'id' must be {_ID_LEN} bytes, got {len(msg_id)}")
    if "body" not in fields:
        raise MalformedEnvelope("envelope is missing 'body'")
    re_map = _optional(fields, "re", dict)
    re = None
    if re_map is not None:
        did, actor, beh = re_map.get("did"), re_map.get("actor"), re_map.get("beh")
        if not (isinstance(did, str) and isinstance(actor, str) and isinstance(beh, str)):
            raise MalformedEnvelope("envelope 're' must be {did: str, actor: str, beh: str}")
        re = ReplyTo(did, actor, beh)
    cor = _optional(fields, "cor", bytes)
    if cor is not None and len(cor) != _ID_LEN:
        raise MalformedEnvelope(f"envelope 'cor' must be {_ID_LEN} bytes")
    return Envelope(
        id=msg_id,
        sender=sender,
        to=_handle(fields, "to"),
        beh=_field(fields, "beh", str),
        body=fields["body"],
        iat=_field(fields, "iat", int),
        exp=_field(fields, "exp", int),
        re=re,
        cor=cor,
        topic=_optional(fields, "topic", str),
        prf=_bytes_list(fields, "prf"),
        tok=_bytes_list(fields, "tok"),
        signed_body=signed_body,
        signature=signature,
    )
