"""The UCAN 1.0 envelope: ``[signature, {"h": varsig header, tag: payload}]`` in DAG-CBOR.

The signature is Ed25519 over the DAG-CBOR encoding of the inner map (the "SigPayload"). A token
is named by its CIDv1 (DAG-CBOR codec, SHA2-256 of the whole encoded envelope). DAG-CBOR is
canonical, so decoding checks that the bytes are exactly what re-encoding gives: a token has one
spelling, hence one CID.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, final

import dag_cbor
from multiformats import CID

from .._identity import Identity
from ._errors import DecodeError, MalformedToken, UnavailableProof
from ._ipld import Ipld
from ._varsig import ED25519_DAG_CBOR, VarsigHeader, parse_header

__all__ = [
    "DAG_CBOR_CODE",
    "Envelope",
    "as_cid",
    "cid_from_digest",
    "cid_key",
    "cid_text",
    "decode_envelope",
    "seal",
]

DAG_CBOR_CODE: Final = 0x71
_SHA2_256_PREFIX: Final = b"\x12\x20"
_BINARY_PREFIX: Final = b"\x01\x71" + _SHA2_256_PREFIX
_BINARY_LENGTH: Final = len(_BINARY_PREFIX) + 32
_ARRAY_OF_TWO: Final = b"\x82"
MAX_TOKEN_SIZE: Final = 1 << 20
"""Tokens above 1 MiB are refused before decoding."""


@final
@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded (or freshly sealed) envelope and the bytes it came from."""

    signature: bytes
    header: VarsigHeader
    tag: str
    payload: Mapping[str, Ipld]
    signed: bytes
    """The DAG-CBOR SigPayload: the exact bytes the signature covers."""
    token: bytes
    """The whole encoded envelope."""
    digest: bytes
    """The token's SHA2-256 multihash (what its CID wraps)."""


def seal(issuer: Identity, tag: str, payload: Mapping[str, Ipld]) -> Envelope:
    """Sign ``payload`` under ``tag`` with ``issuer``'s key and encode the envelope."""
    sig_payload: dict[str, Any] = {"h": ED25519_DAG_CBOR.raw, tag: payload}
    try:
        signed = dag_cbor.encode(sig_payload)
    except Exception as exc:  # the payload was checked; this is the last line of defence
        raise MalformedToken(f"the payload cannot be encoded: {_first_line(exc)}") from exc
    signature = issuer.sign(signed)
    token = dag_cbor.encode([signature, sig_payload])
    return Envelope(signature, ED25519_DAG_CBOR, tag, payload, signed, token, _digest(token))


def decode_envelope(data: object, tags: Collection[str], kind: str) -> Envelope:
    """Decode and structurally check an envelope whose tag is one of ``tags``.

    Raises :class:`DecodeError` for bytes that are not the envelope's shape in canonical
    DAG-CBOR, :class:`MalformedToken` for a wrong tag and
    :class:`~nuactor.ucan.UnsupportedSignature` for a header other than Ed25519/DAG-CBOR. The
    signature itself is not checked here.
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise DecodeError(f"a {kind} token is bytes, got {type(data).__name__}")
    if len(data) > MAX_TOKEN_SIZE:
        raise DecodeError(f"{kind} token is {len(data)} bytes; the limit is {MAX_TOKEN_SIZE}")
    try:
        decoded = dag_cbor.decode(data)
    except Exception as exc:  # dag_cbor raises assorted errors for assorted garbage
        raise DecodeError(f"{kind} token is not valid DAG-CBOR: {_first_line(exc)}") from exc
    if not isinstance(decoded, list) or len(decoded) != 2:
        raise DecodeError(f"a {kind} token is a 2-element array [signature, payload]")
    signature, sig_payload = decoded
    if not isinstance(signature, bytes):
        raise DecodeError(f"{kind} token signature must be bytes, got {type(signature).__name__}")
    if not isinstance(sig_payload, dict) or "h" not in sig_payload or len(sig_payload) != 2:
        raise DecodeError(f"{kind} token's second element must be a map {{h, <tag>: payload}}")
    tag = next(key for key in sig_payload if key != "h")
    if tag not in tags:
        raise MalformedToken(f"{kind} token has type tag {tag!r}; expected one of {sorted(tags)}")
    header = parse_header(sig_payload["h"])
    payload = sig_payload[tag]
    if not isinstance(payload, dict):
        raise MalformedToken(f"{kind} payload must be a map, got {type(payload).__name__}")
    try:
        signed = dag_cbor.encode(sig_payload)
        canonical = _ARRAY_OF_TWO + dag_cbor.encode(signature) + signed
    except Exception as exc:  # e.g. RecursionError on absurdly deep nesting
        raise DecodeError(f"{kind} token cannot be re-encoded: {_first_line(exc)}") from exc
    if canonical != data:
        raise DecodeError(f"{kind} token is not in canonical DAG-CBOR form")
    return Envelope(signature, header, tag, payload, signed, data, _digest(data))


def cid_from_digest(digest: bytes) -> CID:
    """The CIDv1 (DAG-CBOR, base32 ``bafy…``) wrapping a SHA2-256 multihash."""
    return CID("base32", 1, DAG_CBOR_CODE, digest)


def cid_key(cid: object) -> bytes:
    """The lookup key of a token CID: its multihash.

    ``cid`` may be a :class:`CID`, a binary CID (``bytes``, the fast path for CIDs read off the
    wire) or a string such as ``"bafy…"``. Raises :class:`UnavailableProof` for anything that
    cannot name a UCAN token (not a CID, or not a CIDv1 of DAG-CBOR).
    """
    if isinstance(cid, bytes) and len(cid) == _BINARY_LENGTH and cid.startswith(_BINARY_PREFIX):
        return cid[2:]
    if not isinstance(cid, CID):
        cid = as_cid(cid)
    if cid.version != 1 or cid.codec.code != DAG_CBOR_CODE:
        raise UnavailableProof(
            f"proof {cid_text(cid)} is not a CIDv1 of DAG-CBOR, so it is not a token"
        )
    digest: bytes = cid.digest
    return digest


def as_cid(value: object) -> CID:
    """``value`` (a CID, binary CID or CID string) as a :class:`CID`; else
    :class:`UnavailableProof`."""
    if isinstance(value, CID):
        return value
    if isinstance(value, bytes | str):
        try:
            return CID.decode(value)
        except Exception as exc:  # multiformats raises assorted errors for garbage
            raise UnavailableProof(f"{value!r:.80} is not a CID") from exc
    raise UnavailableProof(f"a proof is cited by CID, got {type(value).__name__}")


def cid_text(cid: object) -> str:
    """A CID in base32 (``bafy…``), however it was written, for messages a person reads."""
    try:
        parsed = as_cid(cid)
    except UnavailableProof:
        return repr(cid)
    text: str = str(parsed.set(base="base32")) if parsed.version == 1 else str(parsed)
    return text


def _digest(token: bytes) -> bytes:
    return _SHA2_256_PREFIX + hashlib.sha256(token).digest()


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
