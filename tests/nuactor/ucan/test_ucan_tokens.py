"""Delegation and Invocation tokens: issuing, encoding, decoding and their failure modes."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import dag_cbor
import pytest
from multiformats import CID, multihash

from nuactor import Identity
from nuactor.ucan import (
    DEFAULT_DELEGATION_TTL,
    DEFAULT_INVOCATION_TTL,
    DLG_TAG,
    DLG_TAG_RC1,
    ED25519_DAG_CBOR,
    INV_TAG,
    INV_TAG_RC1,
    DecodeError,
    Delegation,
    InvalidCommand,
    InvalidPolicy,
    Invocation,
    MalformedToken,
    Policy,
    UnsupportedSignature,
    check_command,
    command_covers,
)

ALICE = Identity.from_seed(bytes(range(32)))
BOB = Identity.from_seed(bytes(range(1, 33)))


def delegation(**overrides: Any) -> Delegation:
    kwargs: dict[str, Any] = {
        "issuer": ALICE,
        "audience": BOB.did,
        "subject": ALICE.did,
        "cmd": "/msg/send",
        "policy": [["==", ".to", "bob@example.com"]],
        "expiration": 2_000_000_000,
        "nonce": b"n" * 12,
    }
    kwargs.update(overrides)
    return Delegation.issue(**kwargs)


def sha256_cid(data: bytes) -> CID:
    """The CID computed independently of nuactor.ucan."""
    return CID("base32", 1, "dag-cbor", multihash.wrap(hashlib.sha256(data).digest(), "sha2-256"))


def reencode(token: bytes, mutate: Any) -> bytes:
    """Decode a token with dag_cbor, let ``mutate`` change the SigPayload, and re-encode it
    (keeping the old signature: these tokens are for structural checks)."""
    signature, sig_payload = dag_cbor.decode(token)
    mutate(sig_payload)
    return dag_cbor.encode([signature, sig_payload])


# --- delegations --------------------------------------------------------------------------------


def test_issued_delegation_is_plain_dag_cbor() -> None:
    token = delegation(meta={"note": "hi", "n": [1, 2.5, None]}, not_before=1_000).encode()
    decoded = dag_cbor.decode(token)
    assert dag_cbor.encode(decoded) == token
    signature, sig_payload = decoded
    assert len(signature) == 64
    assert sig_payload["h"] == bytes.fromhex("3401ed01ed011371")
    payload = sig_payload[DLG_TAG]
    assert payload == {
        "iss": ALICE.did,
        "aud": BOB.did,
        "sub": ALICE.did,
        "cmd": "/msg/send",
        "pol": [["==", ".to", "bob@example.com"]],
        "nonce": b"n" * 12,
        "exp": 2_000_000_000,
        "nbf": 1_000,
        "meta": {"note": "hi", "n": [1, 2.5, None]},
    }
    assert ALICE.sign(dag_cbor.encode(sig_payload)) == signature


def test_delegation_round_trip_and_cid() -> None:
    issued = delegation()
    token = issued.encode()
    decoded = Delegation.decode(token)
    assert decoded == issued
    assert hash(decoded) == hash(issued)
    assert decoded.encode() == token
    assert decoded.cid == issued.cid == sha256_cid(token)
    assert str(decoded.cid).startswith("bafy")
    assert decoded.cid_bytes == bytes(sha256_cid(token))
    assert decoded.signed_bytes == dag_cbor.encode(dag_cbor.decode(token)[1])
    assert decoded.payload()["cmd"] == "/msg/send"
    assert decoded.verify_signature()
    assert (decoded.iss, decoded.aud, decoded.sub, decoded.cmd) == (
        ALICE.did,
        BOB.did,
        ALICE.did,
        "/msg/send",
    )
    assert decoded.pol == Policy.parse([["==", ".to", "bob@example.com"]])
    assert decoded.tag == DLG_TAG
    assert decoded.header == ED25519_DAG_CBOR


def test_delegation_defaults() -> None:
    before = int(time.time())
    issued = Delegation.issue(ALICE, BOB.did, ALICE.did, "/")
    assert issued.exp is not None
    assert (
        before + DEFAULT_DELEGATION_TTL <= issued.exp <= int(time.time()) + DEFAULT_DELEGATION_TTL
    )
    assert issued.nbf is None
    assert issued.meta is None
    assert len(issued.nonce) == 16
    assert len(issued.pol) == 0
    assert "nbf" not in issued.payload()
    assert "meta" not in issued.payload()
    assert issued.nonce != Delegation.issue(ALICE, BOB.did, ALICE.did, "/").nonce


def test_powerline_and_no_expiry() -> None:
    issued = delegation(subject=None, expiration=None)
    decoded = Delegation.decode(issued.encode())
    assert decoded.sub is None
    assert decoded.is_powerline
    assert decoded.exp is None
    assert decoded.payload()["sub"] is None
    assert decoded.payload()["exp"] is None


def test_release_candidate_tag_is_read_but_never_written() -> None:
    def to_rc1(sig_payload: dict[str, Any]) -> None:
        sig_payload[DLG_TAG_RC1] = sig_payload.pop(DLG_TAG)

    signed_payload = dag_cbor.decode(delegation().encode())[1]
    to_rc1(signed_payload)
    token = dag_cbor.encode([ALICE.sign(dag_cbor.encode(signed_payload)), signed_payload])
    decoded = Delegation.decode(token)
    assert decoded.tag == DLG_TAG_RC1
    assert decoded.verify_signature()
    assert delegation().tag == DLG_TAG


def test_tampered_delegation_fails_signature_verification() -> None:
    token = reencode(delegation().encode(), lambda p: p[DLG_TAG].update(cmd="/msg"))
    decoded = Delegation.decode(token)
    assert decoded.cmd == "/msg"
    assert not decoded.verify_signature()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p[DLG_TAG].pop("iss"),
        lambda p: p[DLG_TAG].pop("aud"),
        lambda p: p[DLG_TAG].pop("sub"),
        lambda p: p[DLG_TAG].pop("cmd"),
        lambda p: p[DLG_TAG].pop("pol"),
        lambda p: p[DLG_TAG].pop("nonce"),
        lambda p: p[DLG_TAG].pop("exp"),
        lambda p: p[DLG_TAG].update(iss="not a did"),
        lambda p: p[DLG_TAG].update(iss="did:web:example.com"),
        lambda p: p[DLG_TAG].update(iss="did:key:zNotBase58!"),
        lambda p: p[DLG_TAG].update(aud=42),
        lambda p: p[DLG_TAG].update(sub=b"did"),
        lambda p: p[DLG_TAG].update(cmd="msg/send"),
        lambda p: p[DLG_TAG].update(pol=[["nope"]]),
        lambda p: p[DLG_TAG].update(pol={}),
        lambda p: p[DLG_TAG].update(nonce="text"),
        lambda p: p[DLG_TAG].update(exp="tomorrow"),
        lambda p: p[DLG_TAG].update(exp=1.5),
        lambda p: p[DLG_TAG].update(exp=True),
        lambda p: p[DLG_TAG].update(exp=2**53),
        lambda p: p[DLG_TAG].update(nbf=None),
        lambda p: p[DLG_TAG].update(nbf=-(2**53)),
        lambda p: p[DLG_TAG].update(meta=None),
        lambda p: p[DLG_TAG].update(meta=[1]),
        lambda p: p[DLG_TAG].update(extra=1),
        lambda p: p.update({DLG_TAG: [1, 2]}),
        lambda p: p.update({"ucan/dlg@2.0.0": p.pop(DLG_TAG)}),
        lambda p: p.update({INV_TAG: p.pop(DLG_TAG)}),
    ],
)
def test_malformed_delegations_are_rejected(mutate: Any) -> None:
    with pytest.raises(MalformedToken):
        Delegation.decode(reencode(delegation().encode(), mutate))


@pytest.mark.parametrize(
    "header",
    [
        "3401ec01",  # ECDSA
        "3401ed01ed011300",  # Ed25519 over an unknown encoding (0x00)
        "3401ed01ed0113a902",  # Ed25519 over DAG-JSON
        "3401ed01ed011271",  # wrong hash
        "3402ed01ed011371",  # version 2
        "35",
        "",
        "3401ed01ed0113",  # truncated
        "3401ed01ed011371ff",  # a varint cut short at the end
        "3401ed01ed01137100",  # trailing field
        "3481",
    ],
)
def test_unknown_varsig_headers_are_rejected(header: str) -> None:
    token = reencode(delegation().encode(), lambda p: p.update(h=bytes.fromhex(header)))
    with pytest.raises(UnsupportedSignature):
        Delegation.decode(token)


def test_header_must_be_bytes() -> None:
    token = reencode(delegation().encode(), lambda p: p.update(h="NAHtAe0BE3E"))
    with pytest.raises(UnsupportedSignature):
        Delegation.decode(token)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"not cbor at all",
        dag_cbor.encode([]),
        dag_cbor.encode([b"sig"]),
        dag_cbor.encode({"a": 1}),
        dag_cbor.encode([b"sig", {"h": b"x"}]),
        dag_cbor.encode(["sig", {"h": b"x", DLG_TAG: {}}]),
        dag_cbor.encode([b"sig", {"h": b"x", DLG_TAG: {}, "x": 1}]),
        dag_cbor.encode([b"sig", {"x": b"x", DLG_TAG: {}}]),
        dag_cbor.encode([b"sig", {"h": b"x", DLG_TAG: {}}, 3]),
    ],
)
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(MalformedToken):
        Delegation.decode(data)


def test_non_canonical_and_oversized_tokens_are_rejected() -> None:
    token = delegation().encode()
    with pytest.raises(DecodeError):
        Delegation.decode(token + b"\x00")  # trailing bytes
    long_head = b"\x82\x58\x40"  # bytes(64) header, then the same content
    assert token.startswith(long_head)
    non_minimal = b"\x82\x59\x00\x40" + token[3:]  # length written in two bytes
    with pytest.raises(DecodeError):
        Delegation.decode(non_minimal)
    with pytest.raises(DecodeError):
        Delegation.decode(b"\x00" * (2 << 20))
    with pytest.raises(DecodeError):
        Delegation.decode("text")  # type: ignore[arg-type]
    assert Delegation.decode(bytearray(token)) == Delegation.decode(memoryview(token))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"cmd": "msg"}, InvalidCommand),
        ({"cmd": "/Msg"}, InvalidCommand),
        ({"cmd": "/msg/"}, InvalidCommand),
        ({"cmd": "/msg//send"}, InvalidCommand),
        ({"cmd": ""}, InvalidCommand),
        ({"policy": [["==", "a", 1]]}, InvalidPolicy),
        ({"policy": [["~", ".a", 1]]}, InvalidPolicy),
        ({"audience": "bob"}, MalformedToken),
        ({"subject": "alice"}, MalformedToken),
        ({"expiration": 2**60}, MalformedToken),
        ({"not_before": 1.5}, MalformedToken),
        ({"nonce": "abc"}, MalformedToken),
        ({"meta": {1: 2}}, MalformedToken),
        ({"meta": {"f": float("inf")}}, MalformedToken),
        ({"issuer": "did:key:z6Mk"}, MalformedToken),
    ],
)
def test_issue_refuses_bad_arguments(overrides: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        delegation(**overrides)


def test_policy_may_be_given_as_statements_or_policy() -> None:
    parsed = Policy.parse([["==", ".a", 1]])
    assert delegation(policy=parsed).pol == parsed
    assert delegation(policy=list(parsed)).pol == parsed


# --- commands -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["/", "/a", "/msg/send", "/dms/node/peers/list", "/a-b/c_d"])
def test_valid_commands(command: str) -> None:
    assert check_command(command) == command


@pytest.mark.parametrize("command", ["", "a", "a/b", "/A", "/a/", "//", "/a//b", 5, None])
def test_invalid_commands(command: Any) -> None:
    with pytest.raises(InvalidCommand):
        check_command(command)


@pytest.mark.parametrize(
    ("granted", "requested", "covered"),
    [
        ("/", "/anything/at/all", True),
        ("/", "/", True),
        ("/dms", "/dms", True),
        ("/dms", "/dms/node/peers/list", True),
        ("/dms", "/dmsx", False),
        ("/dms/node", "/dms", False),
        ("/dms/node", "/", False),
        ("/msg/send", "/msg/receive", False),
    ],
)
def test_command_attenuation_is_by_segment(granted: str, requested: str, covered: bool) -> None:
    assert command_covers(granted, requested) is covered


# --- invocations --------------------------------------------------------------------------------


def test_invocation_round_trip_and_fields() -> None:
    grant = delegation()
    cause = sha256_cid(b"earlier")
    issued = Invocation.issue(
        BOB,
        ALICE.did,
        "/msg/send",
        {"to": "bob@example.com", "blob": b"\x00\x01", "n": [1, 2.5]},
        [grant],
        audience=ALICE.did,
        expiration=2_000_000_000,
        meta={"trace": "x"},
        nonce=b"m" * 16,
        issued_at=1_700_000_000,
        cause=cause,
    )
    token = issued.encode()
    signature, sig_payload = dag_cbor.decode(token)
    assert dag_cbor.encode([signature, sig_payload]) == token
    assert set(sig_payload) == {"h", INV_TAG}
    assert BOB.sign(dag_cbor.encode(sig_payload)) == signature
    decoded = Invocation.decode(token)
    assert decoded == issued
    assert decoded.cid == sha256_cid(token)
    assert str(decoded.cid).startswith("bafy")
    assert decoded.cid_bytes == bytes(sha256_cid(token))
    assert decoded.prf == (grant.cid,)
    assert decoded.args == {"to": "bob@example.com", "blob": b"\x00\x01", "n": [1, 2.5]}
    assert (decoded.iss, decoded.sub, decoded.aud, decoded.cmd) == (
        BOB.did,
        ALICE.did,
        ALICE.did,
        "/msg/send",
    )
    assert (decoded.exp, decoded.iat, decoded.nonce) == (2_000_000_000, 1_700_000_000, b"m" * 16)
    assert decoded.meta == {"trace": "x"}
    assert decoded.cause == cause
    assert decoded.verify_signature()
    assert decoded.signed_bytes == dag_cbor.encode(sig_payload)
    assert decoded.payload()["iat"] == 1_700_000_000


def test_invocation_defaults() -> None:
    before = int(time.time())
    issued = Invocation.issue(BOB, ALICE.did, "/", {}, [])
    assert issued.exp is not None
    assert before + DEFAULT_INVOCATION_TTL <= issued.exp <= time.time() + DEFAULT_INVOCATION_TTL
    assert issued.iat is not None
    assert before <= issued.iat <= time.time()
    assert issued.aud is None
    assert issued.cause is None
    assert issued.meta is None
    assert set(issued.payload()) == {"iss", "sub", "cmd", "args", "prf", "nonce", "exp", "iat"}


def test_invocation_rc1_tag_is_read() -> None:
    sig_payload = dag_cbor.decode(Invocation.issue(BOB, ALICE.did, "/", {}, []).encode())[1]
    sig_payload[INV_TAG_RC1] = sig_payload.pop(INV_TAG)
    token = dag_cbor.encode([BOB.sign(dag_cbor.encode(sig_payload)), sig_payload])
    decoded = Invocation.decode(token)
    assert decoded.tag == INV_TAG_RC1
    assert decoded.verify_signature()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.pop("sub"),
        lambda p: p.update(sub=None),
        lambda p: p.pop("args"),
        lambda p: p.update(args=[1]),
        lambda p: p.pop("prf"),
        lambda p: p.update(prf="bafy"),
        lambda p: p.update(prf=["bafy"]),
        lambda p: p.update(prf=[CID("base32", 1, "raw", multihash.digest(b"x", "sha2-256"))]),
        lambda p: p.update(aud=None),
        lambda p: p.update(iat=None),
        lambda p: p.update(cause="bafy"),
        lambda p: p.update(pol=[]),
        lambda p: p.pop("exp"),
        lambda p: p.pop("nonce"),
        lambda p: p.update(cmd="/Send"),
    ],
)
def test_malformed_invocations_are_rejected(mutate: Any) -> None:
    token = Invocation.issue(BOB, ALICE.did, "/msg", {}, []).encode()
    with pytest.raises(MalformedToken):
        Invocation.decode(reencode(token, lambda p: mutate(p[INV_TAG])))


def test_a_delegation_is_not_an_invocation_and_vice_versa() -> None:
    with pytest.raises(MalformedToken):
        Invocation.decode(delegation().encode())
    with pytest.raises(MalformedToken):
        Delegation.decode(Invocation.issue(BOB, ALICE.did, "/", {}, []).encode())


def test_issue_requires_an_identity() -> None:
    with pytest.raises(MalformedToken):
        Invocation.issue(BOB.did, ALICE.did, "/", {}, [])  # type: ignore[arg-type]
    with pytest.raises(MalformedToken):
        Delegation.issue(ALICE.did, BOB.did, ALICE.did, "/")  # type: ignore[arg-type]


def test_python_tuples_and_mappings_are_normalised() -> None:
    issued = delegation(policy=[("==", ".a", (1, (2, 3)))], meta={"t": (1, {"x": (2,)})})
    assert issued.pol.to_ipld() == [["==", ".a", [1, [2, 3]]]]
    assert issued.meta == {"t": [1, {"x": [2]}]}
    invocation = Invocation.issue(BOB, ALICE.did, "/", {"a": (1, 2)}, [issued])
    assert Invocation.decode(invocation.encode()).args == {"a": [1, 2]}


@pytest.mark.parametrize(
    "args",
    [{"a": 2**64}, {"a": -(2**64) - 1}, {"a": {1: 2}}, {"a": object()}, {1: 1}, {"a": {1.5}}],
)
def test_values_dag_cbor_cannot_encode_are_refused(args: dict[Any, Any]) -> None:
    with pytest.raises(MalformedToken):
        Invocation.issue(BOB, ALICE.did, "/", args, [])
    with pytest.raises(MalformedToken):
        delegation(meta=args)
