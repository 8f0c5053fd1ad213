"""Reading and checking the fields of a decoded token payload.

Each helper takes the payload map and a field name, and returns the value typed, or raises
:class:`MalformedToken` saying which field is wrong and how. Issuing uses the same checks, so a
token this library writes is always one it can read back.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Mapping
from typing import Final

from multiformats import CID

from .._identity import public_key_from_did
from ..errors import InvalidDid
from ._errors import MalformedToken
from ._ipld import Ipld, is_ipld

__all__ = [
    "DEFAULT",
    "MAX_TIMESTAMP",
    "Default",
    "check_cid",
    "check_did",
    "check_issuer_did",
    "check_meta",
    "check_nonce",
    "check_timestamp",
    "now_seconds",
    "opt_timestamp",
    "random_nonce",
    "reject_unknown",
    "require",
]

MAX_TIMESTAMP: Final = 2**53 - 1
"""Timestamps outside ``±(2**53 - 1)`` must be rejected (the spec's JavaScript-safe range)."""

_ABSENT: Final = object()


def now_seconds() -> int:
    """The current Unix time in whole seconds."""
    return int(time.time())


def require(payload: Mapping[str, object], key: str, kind: str) -> object:
    """The value of a required field; raise if it is missing."""
    value = payload.get(key, _ABSENT)
    if value is _ABSENT:
        raise MalformedToken(f"{kind} payload has no {key!r} field, which is required")
    return value


def reject_unknown(payload: Mapping[str, object], known: frozenset[str], kind: str) -> None:
    """Raise if the payload has fields this version of the spec does not define."""
    extra = sorted(k for k in payload if k not in known)
    if extra:
        raise MalformedToken(f"{kind} payload has unknown field(s) {extra}")


def check_did(value: object, field: str) -> str:
    """A DID string (any method); ``did:key`` DIDs must also decode."""
    if not isinstance(value, str) or not value.startswith("did:") or len(value) < 7:
        raise MalformedToken(f"{field!r} must be a DID string, got {_show(value)}")
    if value.startswith("did:key:"):
        try:
            public_key_from_did(value)
        except InvalidDid as exc:
            raise MalformedToken(f"{field!r} is not a valid did:key: {exc}") from exc
    return value


def check_issuer_did(value: object, field: str = "iss") -> str:
    """An Ed25519 ``did:key``: the only kind of issuer whose signature this library can check."""
    did = check_did(value, field)
    if not did.startswith("did:key:"):
        raise MalformedToken(f"{field!r} must be an Ed25519 did:key to match the signature")
    return did


def check_timestamp(value: object, field: str) -> int:
    """An integer Unix time in seconds within the spec's safe range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedToken(f"{field!r} must be an integer Unix time, got {_show(value)}")
    if not -MAX_TIMESTAMP <= value <= MAX_TIMESTAMP:
        raise MalformedToken(f"{field!r} is outside the range ±(2**53 - 1): {value}")
    return value


def opt_timestamp(value: object, field: str) -> int | None:
    """Like :func:`check_timestamp`, but ``None`` is allowed."""
    return None if value is None else check_timestamp(value, field)


def check_nonce(value: object) -> bytes:
    """The nonce: a byte string."""
    if not isinstance(value, bytes):
        raise MalformedToken(f"'nonce' must be bytes, got {_show(value)}")
    return value


def check_meta(value: object, field: str = "meta") -> Mapping[str, Ipld]:
    """A map with string keys holding only IPLD values."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise MalformedToken(f"{field!r} must be a map with string keys, got {_show(value)}")
    if not is_ipld(value) or not isinstance(value, Mapping):
        raise MalformedToken(f"{field!r} holds values that are not IPLD: {_show(value)}")
    return value


def check_cid(value: object, field: str) -> CID:
    """A CID link."""
    if not isinstance(value, CID):
        raise MalformedToken(f"{field!r} must be a CID link, got {_show(value)}")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


class Default(enum.Enum):
    """The type of :data:`DEFAULT`, the "not given" marker for arguments where ``None`` means
    something (``expiration=None`` is "never expires")."""

    DEFAULT = "DEFAULT"


DEFAULT: Final = Default.DEFAULT


def random_nonce() -> bytes:
    """A fresh 16-byte random nonce."""
    return secrets.token_bytes(16)
