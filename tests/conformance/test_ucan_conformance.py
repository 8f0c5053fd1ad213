"""The UCAN working group's 1.0.0 fixtures, run against ``nuactor.ucan``.

The files are read from ``../shared/conformance/ucan-1.0.0/`` (or ``$NUACTOR_CONFORMANCE_DIR``)
and used as they are. Validation runs at the present time, as the fixtures' README asks.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dag_cbor
import pytest

from nuactor import Identity
from nuactor.ucan import (
    DLG_TAG,
    INV_TAG,
    Delegation,
    Invocation,
    Policy,
    UcanError,
    validate_invocation,
)

_DEFAULT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "conformance"
CONFORMANCE_DIR = Path(os.environ.get("NUACTOR_CONFORMANCE_DIR", _DEFAULT_DIR))
UCAN_DIR = CONFORMANCE_DIR / "ucan-1.0.0"

# The spec's error names, every one of which the invalid fixtures must produce.
SPEC_ERROR_NAMES = {
    "InvalidClaim",
    "UnavailableProof",
    "Expired",
    "TooEarly",
    "InvalidAudience",
    "InvalidSubject",
    "InvalidSignature",
    "MatchError",
}


# --- loading ------------------------------------------------------------------------------------


class _TolerantJson:
    """A JSON reader for hand-written fixture files.

    Beyond strict JSON it accepts trailing commas, and an object written directly inside an
    object without a key (``{ {"a": 1} }``), whose members it merges into the enclosing object:
    ``policy.json`` spells one map that way.
    """

    _NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
    _WS = re.compile(r"\s*")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def parse(self) -> Any:
        value = self._value()
        self._skip()
        if self.pos != len(self.text):
            raise ValueError(f"trailing text at {self.pos}")
        return value

    def _skip(self) -> None:
        match = self._WS.match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()

    def _peek(self) -> str:
        self._skip()
        return self.text[self.pos : self.pos + 1]

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise ValueError(f"expected {char!r} at {self.pos}, got {self._peek()!r}")
        self.pos += 1

    def _value(self) -> Any:
        char = self._peek()
        if char == "{":
            return self._object()
        if char == "[":
            return self._array()
        if char == '"':
            return self._string()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        match = self._NUMBER.match(self.text, self.pos)
        if not match:
            raise ValueError(f"unexpected {char!r} at {self.pos}")
        self.pos = match.end()
        return float(match.group()) if match.group(1) or match.group(2) else int(match.group())

    def _string(self) -> str:
        value, self.pos = json.decoder.scanstring(self.text, self.pos + 1)
        return value

    def _object(self) -> dict[str, Any]:
        self._expect("{")
        result: dict[str, Any] = {}
        while self._peek() != "}":
            if self._peek() == "{":  # an unkeyed object: merge its members
                result.update(self._object())
            else:
                key = self._string()
                self._expect(":")
                result[key] = self._value()
            if self._peek() == ",":
                self.pos += 1
        self._expect("}")
        return result

    def _array(self) -> list[Any]:
        self._expect("[")
        result: list[Any] = []
        while self._peek() != "]":
            result.append(self._value())
            if self._peek() == ",":
                self.pos += 1
        self._expect("]")
        return result


def _load(name: str) -> Any:
    path = UCAN_DIR / name
    if not path.is_file():
        pytest.fail(f"conformance file {path} is missing (set NUACTOR_CONFORMANCE_DIR?)")
    return _TolerantJson(path.read_text(encoding="utf-8")).parse()


def _b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _dag_json_bytes(node: dict[str, Any]) -> bytes:
    return _b64(node["/"]["bytes"])


def _principals() -> dict[str, Identity]:
    keys = _load("delegation.json")["principals"]
    identities = {}
    for name, encoded in keys.items():
        raw = _b64(encoded)
        assert raw[:2] == b"\x80\x26", "a principal key starts with varint(0x1300)"
        identities[name] = Identity.from_seed(raw[2:])
    return identities


def _cases(kind: str) -> Iterator[Any]:
    data = _load("invocation.json")
    for case in data[kind]:
        yield pytest.param(case, id=case["name"])


# --- the fixture files themselves -----------------------------------------------------------


def test_fixture_files_have_every_case() -> None:
    invocations = _load("invocation.json")
    assert invocations["version"] in ("1.0.0", "1.0.0-rc.1")
    assert len(invocations["invalid"]) == 13
    assert {c["error"]["name"] for c in invocations["invalid"]} == SPEC_ERROR_NAMES
    assert invocations["valid"]
    assert _load("delegation.json")["valid"]
    policies = _load("policy.json")
    assert policies["valid"]
    assert policies["invalid"]


def test_tolerant_reader_accepts_trailing_commas_and_unkeyed_objects() -> None:
    assert _TolerantJson('{"a": [1, 2,], "b": {{"c": 1.5}},}').parse() == {
        "a": [1, 2],
        "b": {"c": 1.5},
    }


# --- delegation.json ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c["name"]) for c in _load("delegation.json")["valid"]]
)
def test_valid_delegation(case: dict[str, Any]) -> None:
    token = _b64(case["token"])
    envelope = case["envelope"]
    expected = envelope["payload"]
    delegation = Delegation.decode(token)

    # Same bytes, same CID, whichever way it is re-encoded.
    assert delegation.encode() == token
    assert str(delegation.cid) == case["cid"]
    signature, sig_payload = dag_cbor.decode(token)
    assert dag_cbor.encode([signature, sig_payload]) == token

    # Payload fields.
    assert delegation.iss == expected["iss"]
    assert delegation.aud == expected["aud"]
    assert delegation.sub == expected.get("sub")
    assert delegation.cmd == expected["cmd"]
    assert delegation.pol.to_ipld() == expected["pol"]
    assert delegation.exp == expected.get("exp")
    assert delegation.nbf == expected.get("nbf")
    assert delegation.nonce == _b64(expected["nonce"])
    assert delegation.meta == expected.get("meta")

    # Envelope: signature, algorithm, encoding, spec and version.
    assert delegation.signature == _b64(envelope["signature"])
    assert (delegation.header.algorithm, delegation.header.encoding) == (
        envelope["alg"],
        envelope["enc"],
    )
    assert delegation.tag == f"ucan/{envelope['spec']}@{envelope['version']}"
    assert delegation.verify_signature()

    # The principals' keys produce the DIDs used, and re-issuing reproduces the token exactly
    # (Ed25519 is deterministic).
    principals = {identity.did: identity for identity in _principals().values()}
    assert delegation.iss in principals
    assert delegation.aud in principals
    reissued = Delegation.issue(
        principals[delegation.iss],
        delegation.aud,
        delegation.sub,
        delegation.cmd,
        delegation.pol,
        expiration=delegation.exp,
        not_before=delegation.nbf,
        meta=delegation.meta,
        nonce=delegation.nonce,
    )
    if delegation.tag == DLG_TAG:
        assert reissued.encode() == token
        assert reissued.cid == delegation.cid
    else:  # an older copy of the fixtures (rc.1 tag): we write 1.0.0, so compare payloads
        assert reissued.payload() == delegation.payload()


def test_principal_names_match_their_dids() -> None:
    principals = _principals()
    valid = _load("delegation.json")["valid"][0]["envelope"]["payload"]
    assert principals["bob"].did == valid["iss"]
    assert principals["carol"].did == valid["aud"]


# --- invocation.json ----------------------------------------------------------------------------


def _proofs(case: dict[str, Any]) -> dict[Any, Delegation]:
    proofs = [Delegation.decode(_dag_json_bytes(node)) for node in case["proofs"]]
    return {proof.cid: proof for proof in proofs}


@pytest.mark.parametrize("case", list(_cases("invalid")))
def test_invalid_invocation_fails_with_the_named_error(case: dict[str, Any]) -> None:
    invocation = Invocation.decode(_dag_json_bytes(case["invocation"]))
    with pytest.raises(UcanError) as caught:
        validate_invocation(invocation, _proofs(case))
    assert caught.value.name == case["error"]["name"], str(caught.value)
    assert str(caught.value)  # a message a person can act on


@pytest.mark.parametrize("case", list(_cases("valid")))
def test_valid_invocation_validates(case: dict[str, Any]) -> None:
    invocation = Invocation.decode(_dag_json_bytes(case["invocation"]))
    proofs = _proofs(case)
    chain = validate_invocation(invocation, proofs)
    assert [link.cid for link in chain] == list(invocation.prf)


@pytest.mark.parametrize("case", list(_cases("valid")) + list(_cases("invalid")))
def test_invocation_tokens_round_trip(case: dict[str, Any]) -> None:
    token = _dag_json_bytes(case["invocation"])
    invocation = Invocation.decode(token)
    assert invocation.encode() == token
    assert dag_cbor.encode(dag_cbor.decode(token)) == token
    for node in case["proofs"]:
        proof_token = _dag_json_bytes(node)
        assert Delegation.decode(proof_token).encode() == proof_token


@pytest.mark.parametrize("case", list(_cases("valid")))
def test_reissuing_a_valid_invocation_reproduces_its_bytes(case: dict[str, Any]) -> None:
    token = _dag_json_bytes(case["invocation"])
    invocation = Invocation.decode(token)
    issuer = {p.did: p for p in _principals().values()}[invocation.iss]
    reissued = Invocation.issue(
        issuer,
        invocation.sub,
        invocation.cmd,
        invocation.args,
        list(invocation.prf),
        audience=invocation.aud,
        expiration=invocation.exp,
        meta=invocation.meta,
        nonce=invocation.nonce,
        issued_at=invocation.iat,
        cause=invocation.cause,
    )
    if invocation.tag == INV_TAG:
        assert reissued.encode() == token
        assert reissued.cid == invocation.cid
    else:  # an older copy of the fixtures (rc.1 tag): we write 1.0.0, so compare payloads
        assert reissued.payload() == invocation.payload()


# --- policy.json --------------------------------------------------------------------------------


def _policy_cases(kind: str) -> Iterator[Any]:
    for group_index, group in enumerate(_load("policy.json")[kind]):
        for policy_index, policy in enumerate(group["policies"]):
            yield pytest.param(group["args"], policy, id=f"{kind}-{group_index}-{policy_index}")


@pytest.mark.parametrize(("args", "policy"), list(_policy_cases("valid")))
def test_valid_policy_matches(args: dict[str, Any], policy: list[Any]) -> None:
    parsed = Policy.parse(policy)
    assert parsed.to_ipld() == policy
    assert parsed.matches(args)
    assert parsed.first_failure(args) is None


@pytest.mark.parametrize(("args", "policy"), list(_policy_cases("invalid")))
def test_invalid_policy_does_not_match(args: dict[str, Any], policy: list[Any]) -> None:
    parsed = Policy.parse(policy)
    assert not parsed.matches(args)
    assert parsed.first_failure(args) is not None
