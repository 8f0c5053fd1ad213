"""Property tests: decoding never fails untyped, broken chains are always refused, and policy
evaluation never crashes."""

from __future__ import annotations

import re
from typing import Any

import dag_cbor
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nuactor import Identity
from nuactor.ucan import (
    DLG_TAG,
    DLG_TAG_RC1,
    ED25519_DAG_CBOR,
    INV_TAG,
    CommandMismatch,
    Delegation,
    DelegationStore,
    Expired,
    InvalidAudience,
    InvalidPolicy,
    InvalidSubject,
    Invocation,
    Policy,
    Selector,
    UcanError,
    command_covers,
    glob_match,
    validate_invocation,
)
from nuactor.ucan._ipld import is_ipld
from nuactor.ucan._selector import Unresolved

NOW = 1_900_000_000
PEOPLE = [Identity.from_seed(bytes([i]) * 32) for i in range(1, 7)]
STRANGER = Identity.from_seed(b"\xee" * 32)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- IPLD values --------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.binary(max_size=12)
)
ipld = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=16,
)


# --- decoding never fails with anything but a UcanError --------------------------------------


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_ucan_errors(data: bytes) -> None:
    for kind in (Delegation, Invocation):
        with pytest.raises(UcanError):
            kind.decode(data)


@FAST
@given(ipld)
def test_random_dag_cbor_raises_only_ucan_errors(value: Any) -> None:
    data = dag_cbor.encode(value)
    for kind in (Delegation, Invocation):
        with pytest.raises(UcanError):
            kind.decode(data)


def _valid_payload(tag: str) -> dict[str, Any]:
    alice, bob = PEOPLE[0], PEOPLE[1]
    if tag == INV_TAG:
        return dict(Invocation.issue(alice, bob.did, "/a", {"x": 1}, [], expiration=NOW).payload())
    return dict(
        Delegation.issue(
            alice, bob.did, alice.did, "/a", [["==", ".x", 1]], expiration=NOW
        ).payload()
    )


@FAST
@given(
    tag=st.sampled_from([DLG_TAG, DLG_TAG_RC1, INV_TAG, "ucan/xyz@1.0.0"]),
    data=st.data(),
)
def test_mutated_envelopes_decode_or_raise_ucan_errors(tag: str, data: st.DataObject) -> None:
    payload = _valid_payload(INV_TAG if tag == INV_TAG else DLG_TAG)
    for key in data.draw(st.lists(st.sampled_from(sorted(payload)), max_size=3)):
        if data.draw(st.booleans()):
            payload[key] = data.draw(ipld)
        else:
            payload.pop(key, None)
    if data.draw(st.booleans()):
        payload[data.draw(st.sampled_from(["meta", "nbf", "aud", "iat", "cause", "zz"]))] = (
            data.draw(ipld)
        )
    header = data.draw(st.sampled_from([ED25519_DAG_CBOR.raw]) | st.binary(max_size=10))
    signature = data.draw(st.binary(max_size=70))
    token = dag_cbor.encode([signature, {"h": header, tag: payload}])
    for kind in (Delegation, Invocation):
        try:
            decoded = kind.decode(token)
        except UcanError:
            continue
        assert decoded.encode() == token
        assert decoded.verify_signature() is False  # the signature is random bytes


# --- random chains ------------------------------------------------------------------------------

segments = st.sampled_from(["a", "b", "c", "dms", "node"])


@st.composite
def chains(draw: st.DrawFn) -> tuple[list[Delegation], Identity, str, int | None]:
    """A valid chain of 2-4 links rooted at PEOPLE[0], its invoker, a command it covers and the
    invocation's expiry."""
    size = draw(st.integers(min_value=2, max_value=4))
    principals = [PEOPLE[0], *draw(st.permutations(PEOPLE[1:]))[:size]]
    subject = principals[0].did
    command = "/" + draw(segments)
    links = []
    for index in range(size):
        if draw(st.booleans()):
            command += "/" + draw(segments)
        links.append(
            Delegation.issue(
                principals[index],
                principals[index + 1].did,
                None if index and draw(st.booleans()) else subject,
                command,
                expiration=draw(st.none() | st.integers(NOW + 1, NOW + 10_000)),
                not_before=draw(st.none() | st.integers(NOW - 10_000, NOW)),
            )
        )
    invoked = command + "".join("/" + s for s in draw(st.lists(segments, max_size=2)))
    inv_exp = draw(st.none() | st.integers(NOW + 1, NOW + 10_000))
    return links, principals[size], invoked, inv_exp


def _invoke(
    links: list[Delegation], invoker: Identity, command: str, exp: int | None
) -> Invocation:
    return Invocation.issue(invoker, PEOPLE[0].did, command, {}, links, expiration=exp)


@SLOW
@given(chains())
def test_random_valid_chains_validate(chain: Any) -> None:
    links, invoker, command, exp = chain
    assert validate_invocation(
        _invoke(links, invoker, command, exp), DelegationStore(links), now=NOW
    )


@SLOW
@given(chains(), st.integers(min_value=1, max_value=10_000))
def test_validating_after_any_expiry_fails(chain: Any, delta: int) -> None:
    links, invoker, command, exp = chain
    expiries = [link.exp for link in links if link.exp is not None]
    if exp is not None:
        expiries.append(exp)
    assume(expiries)
    invocation = _invoke(links, invoker, command, exp)
    with pytest.raises(Expired):
        validate_invocation(invocation, DelegationStore(links), now=min(expiries) + delta)


@SLOW
@given(chains(), st.data())
def test_widening_a_command_is_rejected(chain: Any, data: st.DataObject) -> None:
    links, invoker, command, exp = chain
    index = data.draw(st.integers(min_value=1, max_value=len(links)))
    if index == len(links):  # widen the invocation beyond the last link
        wider = data.draw(st.sampled_from(["/", "/zz", links[-1].cmd + "x"]))
        assume(not command_covers(links[-1].cmd, wider))
        invocation = _invoke(links, invoker, wider, exp)
    else:  # a link grants more than its parent
        parent, old = links[index - 1], links[index]
        wider = data.draw(st.sampled_from(["/", "/zz", parent.cmd + "x"]))
        assume(not command_covers(parent.cmd, wider))
        links = list(links)
        links[index] = Delegation.issue(
            PEOPLE[[p.did for p in PEOPLE].index(old.iss)],
            old.aud,
            old.sub,
            wider,
            expiration=old.exp,
        )
        invocation = _invoke(links, invoker, command, exp)
    with pytest.raises(CommandMismatch):
        validate_invocation(invocation, DelegationStore(links), now=NOW)


@SLOW
@given(chains(), st.data())
def test_breaking_principal_alignment_is_rejected(chain: Any, data: st.DataObject) -> None:
    links, invoker, command, exp = chain
    index = data.draw(st.integers(min_value=0, max_value=len(links) - 1))
    old = links[index]
    links = list(links)
    if data.draw(st.booleans()):  # delegate to a stranger instead
        issuer = PEOPLE[[p.did for p in PEOPLE].index(old.iss)]
        links[index] = Delegation.issue(issuer, STRANGER.did, old.sub, old.cmd, expiration=old.exp)
        expected: tuple[type[UcanError], ...] = (InvalidAudience,)
    else:  # a stranger issues the link instead
        links[index] = Delegation.issue(STRANGER, old.aud, old.sub, old.cmd, expiration=old.exp)
        # The root's issuer must be the subject; any later link's must be the previous audience.
        expected = (InvalidSubject,) if index == 0 else (InvalidAudience,)
    with pytest.raises(expected):
        validate_invocation(_invoke(links, invoker, command, exp), DelegationStore(links), now=NOW)


# --- policies never crash -----------------------------------------------------------------------

selector_text = st.sampled_from(
    [".", ".a", ".a.b", ".a[0]", ".a[-1]", ".a[]", ".a[1:]", '.["a"]', ".a?", ".[]", ".b[0]?"]
) | st.text(alphabet='.[]"?:-019ab_ ', max_size=10)
operators = st.sampled_from(
    ["==", "!=", "<", "<=", ">", ">=", "like", "not", "and", "or", "all", "any", "bogus"]
)
statements = st.recursive(
    st.tuples(operators, selector_text, ipld).map(list)
    | st.tuples(st.sampled_from(["<", ">="]), selector_text, st.integers() | st.floats()).map(list)
    | st.tuples(st.just("like"), selector_text, st.text(alphabet="ab*\\", max_size=6)).map(list),
    lambda inner: (
        st.tuples(st.sampled_from(["not"]), inner).map(list)
        | st.tuples(st.sampled_from(["and", "or"]), st.lists(inner, max_size=3)).map(list)
        | st.tuples(st.sampled_from(["all", "any"]), selector_text, inner).map(list)
        | ipld
    ),
    max_leaves=8,
)
args_values = st.recursive(
    scalars | st.sampled_from(["ab", "a*b", 0, 1, 2.5]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3)
    ),
    max_leaves=12,
)


@FAST
@given(st.lists(statements, max_size=3) | ipld, args_values)
def test_random_policies_parse_or_raise_invalid_policy_and_never_crash(raw: Any, args: Any) -> None:
    try:
        policy = Policy.parse(raw)
    except InvalidPolicy:
        return
    result = policy.matches(args)
    assert isinstance(result, bool)
    assert Policy.parse(policy.to_ipld()) == policy
    assert (policy.first_failure(args) is None) is result
    for statement in policy:
        assert Policy.parse([["not", statement.to_ipld()]]).matches(args) is not (
            Policy.parse([statement.to_ipld()]).matches(args)
        )


@FAST
@given(st.text(alphabet='.[]"?:-0129ab_\\ ', max_size=16), args_values)
def test_random_selectors_parse_or_raise_invalid_policy(text: str, value: Any) -> None:
    try:
        selector = Selector.parse(text)
    except InvalidPolicy:
        return
    result = selector.select(value)
    assert isinstance(result, Unresolved) or is_ipld(result)


@FAST
@given(selector_text, args_values, ipld)
def test_not_equal_is_not_equal(text: str, args: Any, value: Any) -> None:
    try:
        equal = Policy.parse([["==", text, value]])
    except InvalidPolicy:
        return
    assert Policy.parse([["!=", text, value]]).matches(args) is not equal.matches(args)


def _reference_glob(pattern: str, text: str) -> bool:
    pieces = re.split(r"(\\\*|\*)", pattern)
    regex = "".join(
        ".*" if piece == "*" else re.escape("*") if piece == "\\*" else re.escape(piece)
        for piece in pieces
    )
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


@FAST
@given(st.text(alphabet="ab*\\", max_size=8), st.text(alphabet="ab*\\", max_size=10))
def test_glob_agrees_with_a_regex_reference(pattern: str, text: str) -> None:
    assert glob_match(pattern, text) is _reference_glob(pattern, text)
