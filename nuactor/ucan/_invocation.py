"""UCAN 1.0 invocations: issuing, encoding and decoding (``ucan/inv@1.0.0``).

An invocation says "``iss`` asks to run ``cmd`` with ``args`` on ``sub``", and cites in ``prf``
the delegations that prove it may: CIDs in order from the root delegation (issued by the subject)
to the one whose audience is the invoker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, final

from multiformats import CID

from .._identity import Identity
from ._command import check_command
from ._delegation import Delegation
from ._envelope import Envelope, cid_key, decode_envelope, seal
from ._errors import MalformedToken, UnavailableProof
from ._fields import (
    DEFAULT,
    Default,
    check_cid,
    check_did,
    check_issuer_did,
    check_meta,
    check_nonce,
    check_timestamp,
    now_seconds,
    opt_timestamp,
    random_nonce,
    reject_unknown,
    require,
)
from ._ipld import Ipld, normalise
from ._token import SignedToken
from ._varsig import VarsigHeader

__all__ = ["DEFAULT_INVOCATION_TTL", "INV_TAG", "INV_TAG_RC1", "Invocation"]

INV_TAG: Final = "ucan/inv@1.0.0"
"""The envelope type tag written on invocations."""
INV_TAG_RC1: Final = "ucan/inv@1.0.0-rc.1"
"""The release-candidate tag, still accepted when reading."""
DEFAULT_INVOCATION_TTL: Final = 300
"""Seconds an invocation lasts when :meth:`Invocation.issue` is not told otherwise: an
invocation is a single request, so it should not outlive the moment by much."""

_KIND: Final = "invocation"
_FIELDS: Final = frozenset(
    {"iss", "sub", "aud", "cmd", "args", "prf", "meta", "nonce", "exp", "iat", "cause"}
)


@final
@dataclass(frozen=True, eq=False, slots=True)
class Invocation(SignedToken):
    """A signed UCAN invocation. Make one with :meth:`issue` or :meth:`decode`.

    Two invocations are equal when their encoded bytes (so their CIDs) are equal.
    """

    iss: str
    sub: str
    aud: str | None
    cmd: str
    args: Mapping[str, Ipld]
    prf: tuple[CID, ...]
    nonce: bytes
    exp: int | None
    iat: int | None
    meta: Mapping[str, Ipld] | None
    cause: CID | None
    signature: bytes = field(repr=False)
    header: VarsigHeader = field(repr=False)
    tag: str = field(repr=False)
    digest: bytes = field(repr=False)
    """SHA2-256 multihash of the encoded token: what :attr:`cid` wraps."""
    _envelope: Envelope = field(repr=False)
    _cid: list[CID] = field(repr=False, default_factory=list)

    @classmethod
    def issue(
        cls,
        issuer: Identity,
        subject: str,
        cmd: str,
        args: Mapping[str, object],
        proofs: Sequence[CID | Delegation],
        audience: str | None = None,
        expiration: int | Default | None = DEFAULT,
        meta: Mapping[str, object] | None = None,
        nonce: bytes | None = None,
        issued_at: int | None = None,
        cause: CID | None = None,
    ) -> Invocation:
        """Sign an invocation of ``cmd`` on ``subject`` by ``issuer``.

        ``proofs`` run from the root delegation (issued by ``subject``) to the one delegated to
        ``issuer``; a :class:`Delegation` stands for its CID. ``expiration`` defaults to
        :data:`DEFAULT_INVOCATION_TTL` seconds from now (``None``: never); ``issued_at`` to now.
        """
        if not isinstance(issuer, Identity):
            raise MalformedToken(f"the issuer is an Identity, got {type(issuer).__name__}")
        now = now_seconds()
        if isinstance(expiration, Default):
            expiration = now + DEFAULT_INVOCATION_TTL
        prf = [p.cid if isinstance(p, Delegation) else p for p in proofs]
        payload: dict[str, Any] = {
            "iss": issuer.did,
            "sub": subject,
            "cmd": cmd,
            "args": normalise(args),
            "prf": prf,
            "nonce": random_nonce() if nonce is None else nonce,
            "exp": expiration,
            "iat": now if issued_at is None else issued_at,
        }
        if audience is not None:
            payload["aud"] = audience
        if meta is not None:
            payload["meta"] = normalise(meta)
        if cause is not None:
            payload["cause"] = cause
        _check_payload(payload)
        return cls._from_envelope(seal(issuer, INV_TAG, payload))

    @classmethod
    def decode(cls, data: bytes) -> Invocation:
        """Decode an invocation token (tag ``1.0.0`` or ``1.0.0-rc.1``) and check its structure.

        The signature is not verified here (see :meth:`verify_signature`); validation does it.
        Raises a :class:`MalformedToken` subclass for anything that is not an invocation.
        """
        return cls._from_envelope(decode_envelope(data, (INV_TAG, INV_TAG_RC1), _KIND))

    @classmethod
    def _from_envelope(cls, envelope: Envelope) -> Invocation:
        iss, sub, aud, cmd, args, prf, nonce, exp, iat, meta, cause = _check_payload(
            envelope.payload
        )
        return cls(
            iss=iss,
            sub=sub,
            aud=aud,
            cmd=cmd,
            args=args,
            prf=prf,
            nonce=nonce,
            exp=exp,
            iat=iat,
            meta=meta,
            cause=cause,
            signature=envelope.signature,
            header=envelope.header,
            tag=envelope.tag,
            digest=envelope.digest,
            _envelope=envelope,
        )


def _check_payload(
    p: Mapping[str, object],
) -> tuple[
    str,
    str,
    str | None,
    str,
    Mapping[str, Ipld],
    tuple[CID, ...],
    bytes,
    int | None,
    int | None,
    Mapping[str, Ipld] | None,
    CID | None,
]:
    reject_unknown(p, _FIELDS, _KIND)
    iss = check_issuer_did(require(p, "iss", _KIND))
    sub = check_did(require(p, "sub", _KIND), "sub")
    aud = check_did(p["aud"], "aud") if "aud" in p else None
    cmd = check_command(require(p, "cmd", _KIND))
    args = check_meta(require(p, "args", _KIND), "args")
    raw_prf = require(p, "prf", _KIND)
    if not isinstance(raw_prf, list):
        raise MalformedToken(f"'prf' must be a list of CIDs, got {type(raw_prf).__name__}")
    prf = tuple(check_cid(link, "prf") for link in raw_prf)
    for link in prf:
        try:
            cid_key(link)
        except UnavailableProof as exc:
            raise MalformedToken(f"'prf' holds a link that is not a token: {exc}") from exc
    nonce = check_nonce(require(p, "nonce", _KIND))
    exp = opt_timestamp(require(p, "exp", _KIND), "exp")
    iat = check_timestamp(p["iat"], "iat") if "iat" in p else None
    meta = check_meta(p["meta"]) if "meta" in p else None
    cause = check_cid(p["cause"], "cause") if "cause" in p else None
    return iss, sub, aud, cmd, args, prf, nonce, exp, iat, meta, cause
