"""What delegations and invocations share as signed tokens: bytes, CID, signature check."""

from __future__ import annotations

from collections.abc import Mapping

from multiformats import CID

from .._identity import verify
from ._envelope import Envelope, cid_from_digest
from ._ipld import Ipld


class SignedToken:
    """Accessors over a decoded token envelope; mixed into :class:`Delegation` and
    :class:`Invocation`, whose dataclass fields provide what is declared here."""

    __slots__ = ()

    iss: str
    signature: bytes
    digest: bytes
    _envelope: Envelope
    _cid: list[CID]

    def encode(self) -> bytes:
        """The DAG-CBOR token, byte for byte as issued or decoded."""
        return self._envelope.token

    @property
    def cid(self) -> CID:
        """The token's CIDv1 (DAG-CBOR, SHA2-256); ``str(cid)`` is the ``bafy…`` form."""
        if not self._cid:
            self._cid.append(cid_from_digest(self.digest))
        return self._cid[0]

    @property
    def cid_bytes(self) -> bytes:
        """The binary CID: version 1, codec DAG-CBOR, then the multihash."""
        return b"\x01\x71" + self.digest

    @property
    def signed_bytes(self) -> bytes:
        """The SigPayload: the DAG-CBOR bytes the signature covers."""
        return self._envelope.signed

    def payload(self) -> Mapping[str, Ipld]:
        """The payload map as it is in the token."""
        return self._envelope.payload

    def verify_signature(self) -> bool:
        """Whether the signature is ``iss``'s Ed25519 signature of the SigPayload."""
        return verify(self.iss, self._envelope.signed, self.signature)

    def __eq__(self, other: object) -> bool:
        """Two tokens are equal when their encoded bytes (so their CIDs) are."""
        return type(other) is type(self) and other.digest == self.digest

    def __hash__(self) -> int:
        return hash(self.digest)
