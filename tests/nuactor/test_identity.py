"""Identities and did:key: published vectors, round trips and strict decoding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiformats import multibase

from nuactor import Identity, did_from_public_key, public_key_from_did, verify
from nuactor.errors import InvalidDid

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "did_key_ed25519.json").read_text())[
    "vectors"
]
B58 = multibase.get("base58btc")


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["did"][-8:])
def test_w3c_did_key_vectors(vector: dict[str, str]) -> None:
    identity = Identity.from_seed(bytes.fromhex(vector["seed"]))
    assert identity.did == vector["did"]
    assert B58.encode(identity.public_key)[1:] == vector["publicKeyBase58"]
    assert public_key_from_did(vector["did"]) == identity.public_key


@given(st.binary(min_size=32, max_size=32))
def test_did_round_trip(seed: bytes) -> None:
    identity = Identity.from_seed(seed)
    assert identity.did.startswith("did:key:z6Mk")
    assert public_key_from_did(identity.did) == identity.public_key
    assert did_from_public_key(identity.public_key) == identity.did


@given(st.binary(min_size=32, max_size=32), st.binary(max_size=200))
def test_sign_verify(seed: bytes, data: bytes) -> None:
    identity = Identity.from_seed(seed)
    signature = identity.sign(data)
    assert len(signature) == 64
    assert verify(identity.did, data, signature)
    assert not verify(identity.did, data + b"x", signature)
    other = Identity.from_seed(bytes(b ^ 1 for b in seed))
    assert not verify(other.did, data, signature)


def test_verify_rejects_malformed_signature() -> None:
    identity = Identity.generate()
    assert not verify(identity.did, b"data", b"short")
    assert not verify(identity.did, b"data", bytes(64))


def test_generate_is_random() -> None:
    assert Identity.generate().did != Identity.generate().did


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33)])
def test_seed_length(seed: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Identity.from_seed(seed)


GOOD = VECTORS[0]["did"]
GOOD_RAW = B58.decode(GOOD[len("did:key:") :])


@pytest.mark.parametrize(
    ("did", "reason"),
    [
        ("did:web:example.com", "did:key"),
        ("did:key:" + "f" + GOOD_RAW.hex(), "prefix 'f'"),  # base16 multibase
        ("did:key:m" + "7QE", "prefix 'm'"),  # base64 multibase
        ("did:key:z", "multicodec"),
        ("did:key:z0OIl", "base58btc"),  # characters outside the alphabet
        # X25519 (0xec) instead of Ed25519 (0xed)
        ("did:key:" + B58.encode(b"\xec\x01" + GOOD_RAW[2:]), "multicodec"),
        # secp256k1 (0xe7)
        ("did:key:" + B58.encode(b"\xe7\x01" + bytes(33)), "multicodec"),
        ("did:key:" + B58.encode(GOOD_RAW[:-1]), "31-byte"),
        ("did:key:" + B58.encode(GOOD_RAW + b"\x00"), "33-byte"),
        ("did:key:z1" + GOOD[len("did:key:z") :], "multicodec"),  # a leading zero byte
        ("", "did:key"),
        ("did:key:", "prefix ''"),
    ],
)
def test_strict_decoding(did: str, reason: str) -> None:
    with pytest.raises(InvalidDid, match=reason):
        public_key_from_did(did)


def test_non_string_did() -> None:
    with pytest.raises(InvalidDid):
        public_key_from_did(b"did:key:z6Mk")  # type: ignore[arg-type]


@given(st.text(max_size=80))
def test_garbage_raises_only_invalid_did(text: str) -> None:
    try:
        key = public_key_from_did(text)
    except InvalidDid:
        return
    assert len(key) == 32 and did_from_public_key(key) == text


@given(st.binary(max_size=48))
def test_arbitrary_multibase_payloads(raw: bytes) -> None:
    did = "did:key:" + B58.encode(raw)
    if raw[:2] == b"\xed\x01" and len(raw) == 34:
        assert public_key_from_did(did) == raw[2:]
    else:
        with pytest.raises(InvalidDid):
            public_key_from_did(did)
