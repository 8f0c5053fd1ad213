"""DelegationStore and RevocationStore."""

from __future__ import annotations

import pytest
from multiformats import CID, multihash

from nuactor import Identity
from nuactor.ucan import Delegation, DelegationStore, MalformedToken, RevocationStore

A = Identity.from_seed(b"\x0a" * 32)
B = Identity.from_seed(b"\x0b" * 32)
C = Identity.from_seed(b"\x0c" * 32)


def grant(issuer: Identity, audience: Identity, exp: int | None = 2_000_000_000) -> Delegation:
    return Delegation.issue(issuer, audience.did, issuer.did, "/x", expiration=exp)


def test_add_get_contains_iterate() -> None:
    ab, ac = grant(A, B), grant(A, C)
    store = DelegationStore([ab])
    assert store.add(ac) == ac.cid
    assert len(store) == 2
    assert store[ab.cid] is ab
    assert store.get(ac.cid) is ac
    assert ab.cid in store
    assert ab in store  # a delegation stands for its CID
    assert set(store) == {ab.cid, ac.cid}
    assert dict(store.items()) == {ab.cid: ab, ac.cid: ac}
    assert store.get_by_digest(ab.digest) is ab
    assert "<DelegationStore of 2" in repr(store)


def test_lookup_by_cid_in_any_base() -> None:
    ab = grant(A, B)
    store = DelegationStore([ab])
    assert CID.decode(ab.cid.encode("base58btc")) in store
    assert store[CID.decode(ab.cid.encode("base58btc"))] is ab


def test_missing_and_foreign_keys() -> None:
    store = DelegationStore()
    stranger = grant(A, B).cid
    raw = CID("base32", 1, "raw", multihash.digest(b"x", "sha2-256"))
    for key in (stranger, raw, "bafy…", 5):
        assert key not in store
        with pytest.raises(KeyError):
            store[key]  # type: ignore[index]
        assert store.get(key) is None  # type: ignore[arg-type]


def test_adding_twice_is_harmless_and_discard_forgets() -> None:
    ab = grant(A, B)
    store = DelegationStore([ab, ab])
    assert len(store) == 1
    assert store.by_audience(B.did) == [ab]
    store.discard(ab.cid)
    assert len(store) == 0
    assert store.by_audience(B.did) == []
    store.discard(ab)  # already gone: no error
    store.discard(CID("base32", 1, "raw", multihash.digest(b"x", "sha2-256")))


def test_by_audience() -> None:
    ab, cb, ac = grant(A, B), grant(C, B), grant(A, C)
    store = DelegationStore([ab, cb, ac])
    assert store.by_audience(B.did) == [ab, cb]
    assert store.by_audience(C.did) == [ac]
    assert store.by_audience(A.did) == []


def test_add_token_decodes() -> None:
    ab = grant(A, B)
    store = DelegationStore()
    assert store.add_token(ab.encode()) == ab
    assert ab.cid in store
    with pytest.raises(MalformedToken):
        store.add_token(b"junk")
    with pytest.raises(TypeError):
        store.add(ab.encode())  # type: ignore[arg-type]


def test_prune_expired() -> None:
    old, new, forever = grant(A, B, exp=100), grant(A, C, exp=10_000), grant(B, C, exp=None)
    store = DelegationStore([old, new, forever])
    assert store.prune_expired(now=1_000) == 1
    assert set(store) == {new.cid, forever.cid}
    assert store.by_audience(B.did) == []


def test_revocation_store() -> None:
    ab, ac = grant(A, B), grant(A, C)
    revoked = RevocationStore([ab.cid])
    assert revoked.is_revoked(ab.cid)
    assert revoked.is_revoked(ab)
    assert ab.cid in revoked
    assert not revoked.is_revoked(ac.cid)
    revoked.add(ac)
    assert revoked.has_digest(ac.digest)
    assert set(revoked) == {ab.cid, ac.cid}
    assert len(revoked) == 2
    assert "5" not in revoked
    assert "<RevocationStore of 2" in repr(revoked)
    with pytest.raises(ValueError, match="cannot revoke"):
        revoked.add("bafy")  # type: ignore[arg-type]
