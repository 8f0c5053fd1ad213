"""Where delegations and revocations are kept: in memory, keyed by CID.

:class:`DelegationStore` is a read-only :class:`~collections.abc.Mapping` from CID to
:class:`Delegation` (so it can be passed wherever proofs are looked up) with ``add`` and
``discard`` to change it and an index by audience to find the delegations granted to a DID.
Keys are the tokens' multihashes, so a CID matches whatever multibase it was written in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import final

from multiformats import CID

from ._delegation import Delegation
from ._envelope import cid_from_digest, cid_key
from ._errors import UnavailableProof

__all__ = ["DelegationStore", "RevocationStore"]


def _key(cid: object) -> bytes | None:
    if isinstance(cid, Delegation):
        return cid.digest
    try:
        return cid_key(cid)
    except UnavailableProof:
        return None


@final
class DelegationStore(Mapping[CID, Delegation]):
    """Delegations by CID, with an index by audience.

    The store does not verify what it is given; validation does (once per CID, when memoised).
    """

    __slots__ = ("_by_audience", "_by_digest")

    def __init__(self, delegations: Iterable[Delegation] = ()) -> None:
        self._by_digest: dict[bytes, Delegation] = {}
        self._by_audience: dict[str, dict[bytes, Delegation]] = {}
        for delegation in delegations:
            self.add(delegation)

    def add(self, delegation: Delegation) -> CID:
        """Keep ``delegation``; return its CID. Adding the same token twice is harmless."""
        if not isinstance(delegation, Delegation):
            raise TypeError(f"a DelegationStore holds Delegations, got {type(delegation).__name__}")
        self.keep(delegation)
        return delegation.cid

    def keep(self, delegation: Delegation) -> None:
        """:meth:`add` without making the CID object (about 0.1 ms): for hot paths."""
        self._by_digest[delegation.digest] = delegation
        self._by_audience.setdefault(delegation.aud, {})[delegation.digest] = delegation

    def add_token(self, data: bytes) -> Delegation:
        """Decode a delegation token and keep it (raises :class:`MalformedToken` if it is not)."""
        delegation = Delegation.decode(data)
        self.keep(delegation)
        return delegation

    def discard(self, cid: CID | Delegation) -> None:
        """Forget the delegation with this CID, if it is here."""
        key = _key(cid)
        delegation = self._by_digest.pop(key, None) if key is not None else None
        if delegation is not None:
            audience = self._by_audience.get(delegation.aud, {})
            audience.pop(delegation.digest, None)
            if not audience:
                self._by_audience.pop(delegation.aud, None)

    def by_audience(self, did: str) -> list[Delegation]:
        """The delegations whose ``aud`` is ``did``, oldest added first."""
        return list(self._by_audience.get(did, {}).values())

    def prune_expired(self, now: int) -> int:
        """Drop every delegation whose ``exp`` is before ``now``; return how many went."""
        expired = [d for d in self._by_digest.values() if d.exp is not None and d.exp < now]
        for delegation in expired:
            self.discard(delegation)
        return len(expired)

    def get_by_digest(self, digest: bytes) -> Delegation | None:
        """The delegation whose token has this SHA2-256 multihash (the validator's fast path)."""
        return self._by_digest.get(digest)

    def __getitem__(self, cid: CID) -> Delegation:
        key = _key(cid)
        if key is None or key not in self._by_digest:
            raise KeyError(cid)
        return self._by_digest[key]

    def __contains__(self, cid: object) -> bool:
        key = _key(cid)
        return key is not None and key in self._by_digest

    def __iter__(self) -> Iterator[CID]:
        return (d.cid for d in list(self._by_digest.values()))

    def __len__(self) -> int:
        return len(self._by_digest)

    def __repr__(self) -> str:
        return f"<DelegationStore of {len(self)} delegation(s)>"


@final
class RevocationStore:
    """The set of revoked delegation CIDs. A revoked delegation fails every chain it is in."""

    __slots__ = ("_digests",)

    def __init__(self, revoked: Iterable[CID | Delegation] = ()) -> None:
        self._digests: set[bytes] = set()
        for item in revoked:
            self.add(item)

    def add(self, cid: CID | Delegation) -> None:
        """Revoke the delegation with this CID (or this delegation)."""
        key = _key(cid)
        if key is None:
            raise ValueError(f"cannot revoke {cid!r}: not a CID of a DAG-CBOR token")
        self._digests.add(key)

    def is_revoked(self, cid: CID | Delegation) -> bool:
        """Whether the delegation with this CID has been revoked."""
        key = _key(cid)
        return key is not None and key in self._digests

    def has_digest(self, digest: bytes) -> bool:
        """Whether the token with this SHA2-256 multihash is revoked (the validator's fast path)."""
        return digest in self._digests

    def __contains__(self, cid: object) -> bool:
        key = _key(cid)
        return key is not None and key in self._digests

    def __iter__(self) -> Iterator[CID]:
        return (cid_from_digest(d) for d in list(self._digests))

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:
        return f"<RevocationStore of {len(self)} revoked CID(s)>"
