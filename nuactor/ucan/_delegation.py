"""UCAN 1.0 delegations: issuing, encoding and decoding (``ucan/dlg@1.0.0``).

A delegation says "``iss`` lets ``aud`` run ``cmd`` (and every command under it) on ``sub``,
provided the arguments satisfy ``pol``, between ``nbf`` and ``exp``". ``sub = None`` is a
*powerline*: it stands for whatever subject the chain above it is about.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, final

from multiformats import CID

from .._identity import Identity
from ._command import check_command
from ._envelope import Envelope, decode_envelope, seal
from ._errors import MalformedToken
from ._fields import (
    DEFAULT,
    Default,
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
from ._policy import Policy, Statement
from ._token import SignedToken
from ._varsig import VarsigHeader

__all__ = ["DEFAULT_DELEGATION_TTL", "DLG_TAG", "DLG_TAG_RC1", "Delegation"]

DLG_TAG: Final = "ucan/dlg@1.0.0"
"""The envelope type tag written on delegations."""
DLG_TAG_RC1: Final = "ucan/dlg@1.0.0-rc.1"
"""The release-candidate tag, still accepted when reading."""
DEFAULT_DELEGATION_TTL: Final = 3600
"""Seconds a delegation lasts when :meth:`Delegation.issue` is not told otherwise."""

_KIND: Final = "delegation"
_FIELDS: Final = frozenset({"iss", "aud", "sub", "cmd", "pol", "nonce", "meta", "nbf", "exp"})


@final
@dataclass(frozen=True, eq=False, slots=True)
class Delegation(SignedToken):
    """A signed UCAN delegation. Make one with :meth:`issue` or :meth:`decode`.

    Two delegations are equal when their encoded bytes (so their CIDs) are equal.
    """

    iss: str
    aud: str
    sub: str | None
    cmd: str
    pol: Policy
    nonce: bytes
    exp: int | None
    nbf: int | None
    meta: Mapping[str, Ipld] | None
    signature: bytes = field(repr=False)
    header: VarsigHeader = field(repr=False)
    tag: str = field(repr=False)
    digest: bytes = field(repr=False)
    """SHA2-256 multihash of the encoded token: what :attr:`cid` wraps, and the store's key."""
    _envelope: Envelope = field(repr=False)
    _cid: list[CID] = field(repr=False, default_factory=list)

    @classmethod
    def issue(
        cls,
        issuer: Identity,
        audience: str,
        subject: str | None,
        cmd: str,
        policy: Policy | Sequence[Statement | Sequence[object]] = (),
        expiration: int | Default | None = DEFAULT,
        not_before: int | None = None,
        meta: Mapping[str, object] | None = None,
        nonce: bytes | None = None,
    ) -> Delegation:
        """Sign a delegation from ``issuer`` to ``audience``.

        ``subject=None`` issues a powerline. ``expiration`` defaults to an hour from now
        (:data:`DEFAULT_DELEGATION_TTL`); ``None`` means it never expires. A malformed argument
        raises a :class:`MalformedToken` subclass before anything is signed.
        """
        if not isinstance(issuer, Identity):
            raise MalformedToken(f"the issuer is an Identity, got {type(issuer).__name__}")
        if isinstance(expiration, Default):
            expiration = now_seconds() + DEFAULT_DELEGATION_TTL
        pol = Policy.parse(policy if isinstance(policy, Policy) else list(policy))
        payload: dict[str, Any] = {
            "iss": issuer.did,
            "aud": audience,
            "sub": subject,
            "cmd": cmd,
            "pol": pol.to_ipld(),
            "nonce": random_nonce() if nonce is None else nonce,
            "exp": expiration,
        }
        if not_before is not None:
            payload["nbf"] = not_before
        if meta is not None:
            payload["meta"] = normalise(meta)
        _check_payload(payload)  # fail on bad input before signing anything
        return cls._from_envelope(seal(issuer, DLG_TAG, payload))

    @classmethod
    def decode(cls, data: bytes) -> Delegation:
        """Decode a delegation token (tag ``1.0.0`` or ``1.0.0-rc.1``) and check its structure.

        The signature is not verified here (see :meth:`verify_signature`); validation does it.
        Raises a :class:`MalformedToken` subclass for anything that is not a delegation.
        """
        return cls._from_envelope(decode_envelope(data, (DLG_TAG, DLG_TAG_RC1), _KIND))

    @classmethod
    def _from_envelope(cls, envelope: Envelope) -> Delegation:
        p = envelope.payload
        iss, aud, sub, cmd, pol, nonce, exp, nbf, meta = _check_payload(p)
        return cls(
            iss=iss,
            aud=aud,
            sub=sub,
            cmd=cmd,
            pol=pol,
            nonce=nonce,
            exp=exp,
            nbf=nbf,
            meta=meta,
            signature=envelope.signature,
            header=envelope.header,
            tag=envelope.tag,
            digest=envelope.digest,
            _envelope=envelope,
        )

    @property
    def is_powerline(self) -> bool:
        """Whether ``sub`` is null: a delegation of whatever subject the chain is about."""
        return self.sub is None


def _check_payload(
    p: Mapping[str, object],
) -> tuple[
    str, str, str | None, str, Policy, bytes, int | None, int | None, Mapping[str, Ipld] | None
]:
    reject_unknown(p, _FIELDS, _KIND)
    iss = check_issuer_did(require(p, "iss", _KIND))
    aud = check_did(require(p, "aud", _KIND), "aud")
    raw_sub = require(p, "sub", _KIND)
    sub = None if raw_sub is None else check_did(raw_sub, "sub")
    cmd = check_command(require(p, "cmd", _KIND))
    pol = Policy.parse(require(p, "pol", _KIND))
    nonce = check_nonce(require(p, "nonce", _KIND))
    exp = opt_timestamp(require(p, "exp", _KIND), "exp")
    nbf = check_timestamp(p["nbf"], "nbf") if "nbf" in p else None
    meta = check_meta(p["meta"]) if "meta" in p else None
    return iss, aud, sub, cmd, pol, nonce, exp, nbf, meta
