"""The varsig header (``h``) of a UCAN envelope: which signature algorithm, over which encoding.

Varsig v1 is a run of unsigned varints: the varsig prefix ``0x34``, the version ``0x01``, the
signature algorithm with its parameters, and the multicodec of the payload encoding. For Ed25519
over DAG-CBOR, the only pair this library signs and verifies, that is::

    34 01  ed01 (EdDSA)  ed01 (curve edwards25519)  13 (hash sha2-512)  71 (DAG-CBOR)

which is exactly what the UCAN working group's fixtures carry. Anything else is refused with
:class:`UnsupportedSignature`, naming what was found, rather than mis-verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, final

from ._errors import UnsupportedSignature

__all__ = ["ED25519_DAG_CBOR", "VarsigHeader", "parse_header"]

_VARSIG_PREFIX: Final = 0x34
_VERSION_1: Final = 0x01
_EDDSA: Final = 0xED
_CURVE_ED25519: Final = 0xED
_SHA2_512: Final = 0x13
_DAG_CBOR: Final = 0x71

_ALGORITHM_NAMES: Final = {0xED: "EdDSA", 0xEC: "ECDSA", 0x1205: "RSA", 0xE7: "ES256K"}
_ENCODING_NAMES: Final = {0x71: "DAG-CBOR", 0x0129: "DAG-JSON", 0x5F: "raw", 0x6A77: "JWT"}
_MAX_VARINT_BYTES: Final = 9


@final
@dataclass(frozen=True, slots=True)
class VarsigHeader:
    """A parsed varsig header: the raw bytes and what they name."""

    raw: bytes
    algorithm: str
    encoding: str


ED25519_DAG_CBOR: Final = VarsigHeader(
    raw=bytes([_VARSIG_PREFIX, _VERSION_1, 0xED, 0x01, 0xED, 0x01, _SHA2_512, _DAG_CBOR]),
    algorithm="Ed25519",
    encoding="DAG-CBOR",
)
"""The header this library writes, and the only one it accepts."""


def parse_header(raw: object) -> VarsigHeader:
    """Parse the ``h`` field of an envelope; raise :class:`UnsupportedSignature` if it is not
    Ed25519 over DAG-CBOR (or not a varsig header at all)."""
    if not isinstance(raw, bytes):
        raise UnsupportedSignature(f"the varsig header 'h' must be bytes, got {type(raw).__name__}")
    if raw == ED25519_DAG_CBOR.raw:
        return ED25519_DAG_CBOR
    values = _read_varints(raw)
    if len(values) < 3 or values[0] != _VARSIG_PREFIX:
        raise UnsupportedSignature(f"'h' is not a varsig header: {raw.hex()}")
    if values[1] != _VERSION_1:
        raise UnsupportedSignature(f"varsig version {values[1]} is not supported (only 1)")
    algorithm = values[2]
    if algorithm != _EDDSA:
        name = _ALGORITHM_NAMES.get(algorithm, f"0x{algorithm:x}")
        raise UnsupportedSignature(f"signature algorithm {name} is not supported (only Ed25519)")
    if values[3:5] != [_CURVE_ED25519, _SHA2_512] or len(values) != 6:
        raise UnsupportedSignature(f"EdDSA parameters are not Ed25519/SHA2-512: {raw.hex()}")
    encoding = values[5]
    name = _ENCODING_NAMES.get(encoding, f"0x{encoding:x}")
    raise UnsupportedSignature(f"payload encoding {name} is not supported (only DAG-CBOR)")


def _read_varints(raw: bytes) -> list[int]:
    """Decode ``raw`` as consecutive minimal unsigned LEB128 varints."""
    values: list[int] = []
    value = shift = length = 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        shift += 7
        length += 1
        if length > _MAX_VARINT_BYTES:
            raise UnsupportedSignature(f"varsig header has an over-long varint: {raw.hex()}")
        if not byte & 0x80:
            if byte == 0 and length > 1:
                raise UnsupportedSignature(f"varsig header has a non-minimal varint: {raw.hex()}")
            values.append(value)
            value = shift = length = 0
    if length:
        raise UnsupportedSignature(f"varsig header ends inside a varint: {raw.hex()}")
    return values
