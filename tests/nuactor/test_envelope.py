"""Envelopes: round trips, tampering, hostile bytes, time bounds and size limits."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nuactor import Envelope, Handle, Identity, ReplyTo, verify
from nuactor._envelope import SIGNING_CONTEXT
from nuactor.errors import (
    BadSignature,
    EnvelopeError,
    EnvelopeExpired,
    EnvelopeNotYetValid,
    EnvelopeTooLarge,
    MalformedEnvelope,
    SignerMismatch,
)

ALICE = Identity.from_seed(bytes(range(32)))
BOB = Identity.from_seed(bytes(range(1, 33)))
NOW = 1_800_000_000_000

# Any msgpack value with string map keys (what a body may hold).
bodies = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
    | st.binary(max_size=50),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


def make(body: object = None, **kwargs: object) -> Envelope:
    args: dict[str, object] = {
        "sender": Handle(ALICE.did, "root"),
        "to": Handle(BOB.did, "root"),
        "beh": "/dms/node/peers/list",
        "body": body,
        "now": NOW,
    }
    args.update(kwargs)
    return Envelope.build(**args)  # type: ignore[arg-type]


def encoded(body: object = None, **kwargs: object) -> bytes:
    return make(body, **kwargs).sign(ALICE).encode()


@settings(max_examples=200)
@given(bodies)
def test_round_trip(body: object) -> None:
    envelope = make(
        body,
        re=ReplyTo(ALICE.did, "inbox", "/reply"),
        cor=bytes(16),
        topic="/nunet/hello",
        prf=(b"\x01cid",),
        tok=(b"token",),
    )
    decoded = Envelope.decode(envelope.sign(ALICE).encode(), now=NOW)
    assert decoded == envelope
    assert decoded.body == body
    assert decoded.signature == envelope.signature


def test_signature_is_over_context_and_body() -> None:
    envelope = make({"a": 1}).sign(ALICE)
    assert envelope.signed_body is not None and envelope.signature is not None
    assert verify(ALICE.did, SIGNING_CONTEXT + envelope.signed_body, envelope.signature)
    assert not verify(ALICE.did, envelope.signed_body, envelope.signature)
    outer = msgpack.unpackb(envelope.encode())
    assert outer == [envelope.signed_body, envelope.signature]


def test_fields_on_the_wire() -> None:
    envelope = make({"x": 1}, ttl_ms=5_000).sign(ALICE)
    fields = msgpack.unpackb(envelope.signed_body)
    assert fields["v"] == 1
    assert fields["from"] == {"did": ALICE.did, "actor": "root"}
    assert fields["to"] == {"did": BOB.did, "actor": "root"}
    assert fields["beh"] == "/dms/node/peers/list"
    assert fields["iat"] == NOW and fields["exp"] == NOW + 5_000
    assert len(fields["id"]) == 16
    assert fields["prf"] == [] and fields["tok"] == [] and fields["re"] is None


def test_ids_are_random() -> None:
    assert make().id != make().id


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, st.data())
def test_every_single_bit_flip_is_rejected(body: object, data: st.DataObject) -> None:
    raw = encoded(body)
    bit = data.draw(st.integers(min_value=0, max_value=len(raw) * 8 - 1))
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(EnvelopeError):
        Envelope.decode(bytes(flipped), now=NOW)


def test_exhaustive_bit_flips_of_one_envelope() -> None:
    raw = encoded({"cmd": "hello", "n": 3})
    for bit in range(len(raw) * 8):
        flipped = bytearray(raw)
        flipped[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(EnvelopeError):
            Envelope.decode(bytes(flipped), now=NOW)


@settings(max_examples=500)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_typed_errors(data: bytes) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.decode(data, now=NOW)


@settings(max_examples=300)
@given(bodies)
def test_arbitrary_msgpack_values_raise_only_typed_errors(value: object) -> None:
    with pytest.raises(EnvelopeError):
        Envelope.decode(msgpack.packb(value), now=NOW)


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "v",
                "id",
                "from",
                "to",
                "beh",
                "body",
                "iat",
                "exp",
                "re",
                "cor",
                "topic",
                "prf",
                "tok",
            ]
        ),
        bodies,
    )
)
def test_hostile_maps_with_a_valid_signature(fields: dict[str, object]) -> None:
    """A signer may send any map at all; decode must still refuse it cleanly or accept it whole."""
    fields = {"v": 1, "from": {"did": ALICE.did, "actor": "a"}, **fields}
    body = msgpack.packb(fields)
    raw = msgpack.packb([body, ALICE.sign(SIGNING_CONTEXT + body)])
    try:
        envelope = Envelope.decode(raw, now=NOW)
    except EnvelopeError:
        return
    assert envelope.sender.did == ALICE.did


def test_claiming_another_sender_is_rejected() -> None:
    """Signed by Bob's key but claiming to be from Alice."""
    envelope = make({"pay": 100})
    body = msgpack.packb(envelope.to_map())
    forged = msgpack.packb([body, BOB.sign(SIGNING_CONTEXT + body)])
    with pytest.raises(BadSignature, match=ALICE.did):
        Envelope.decode(forged, now=NOW)


def test_signing_as_someone_else_is_refused() -> None:
    with pytest.raises(SignerMismatch, match=BOB.did):
        make().sign(BOB)


def test_swapped_signature_is_rejected() -> None:
    one = make({"n": 1}).sign(ALICE)
    two = make({"n": 2}).sign(ALICE)
    assert one.signed_body is not None and two.signature is not None
    spliced = msgpack.packb([one.signed_body, two.signature])
    with pytest.raises(BadSignature):
        Envelope.decode(spliced, now=NOW)


def test_size_limit_is_checked_before_decoding() -> None:
    big = encoded(b"x" * 2000)
    with pytest.raises(EnvelopeTooLarge, match="exceeds the limit of 1000"):
        Envelope.decode(big, now=NOW, max_size=1000)
    # Garbage over the limit is refused for its size, before any parsing.
    with pytest.raises(EnvelopeTooLarge):
        Envelope.decode(b"\xff" * 2001, max_size=2000)
    assert Envelope.decode(big, now=NOW, max_size=len(big)).body == b"x" * 2000


def test_default_limit_is_one_mebibyte() -> None:
    with pytest.raises(EnvelopeTooLarge):
        Envelope.decode(encoded(b"x" * (1 << 20)), now=NOW)


def test_expired() -> None:
    raw = encoded(ttl_ms=1_000)
    assert Envelope.decode(raw, now=NOW + 1_000 + 60_000).iat == NOW  # within the skew
    with pytest.raises(EnvelopeExpired, match="expired"):
        Envelope.decode(raw, now=NOW + 1_000 + 60_001)


def test_issued_in_the_future() -> None:
    raw = encoded(ttl_ms=1_000)
    Envelope.decode(raw, now=NOW - 60_000)
    with pytest.raises(EnvelopeNotYetValid, match="future"):
        Envelope.decode(raw, now=NOW - 60_001)


def test_expiry_too_far_ahead() -> None:
    Envelope.decode(encoded(ttl_ms=5 * 60_000), now=NOW)
    with pytest.raises(EnvelopeNotYetValid, match="at most"):
        Envelope.decode(encoded(ttl_ms=7 * 60_000), now=NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"v": 2}, "version"),
        ({"id": b"short"}, "'id' must be 16 bytes"),
        ({"id": "not bytes" * 2}, "'id' has the wrong type"),
        ({"to": "root"}, "'to' has the wrong type"),
        ({"to": {"did": 1, "actor": "x"}}, "'to' must be"),
        ({"beh": 7}, "'beh' has the wrong type"),
        ({"iat": True}, "'iat' has the wrong type"),
        ({"exp": "soon"}, "'exp' has the wrong type"),
        ({"re": {"did": "x"}}, "'re' must be"),
        ({"cor": b"x"}, "'cor' must be 16 bytes"),
        ({"prf": [1]}, "'prf' must be a list of bin"),
        ({"tok": b"x"}, "'tok' must be a list of bin"),
        ({"topic": 5}, "'topic' has the wrong type"),
    ],
)
def test_wrong_types_are_named(change: dict[str, object], message: str) -> None:
    fields = make().to_map() | change
    body = msgpack.packb(fields)
    raw = msgpack.packb([body, ALICE.sign(SIGNING_CONTEXT + body)])
    with pytest.raises(MalformedEnvelope, match=message):
        Envelope.decode(raw, now=NOW)


@pytest.mark.parametrize("key", ["id", "from", "to", "beh", "body", "iat", "exp"])
def test_missing_key_is_named(key: str) -> None:
    fields = make().to_map()
    del fields[key]
    body = msgpack.packb(fields)
    raw = msgpack.packb([body, ALICE.sign(SIGNING_CONTEXT + body)])
    with pytest.raises(MalformedEnvelope, match=f"'{key}'" if key != "from" else "from"):
        Envelope.decode(raw, now=NOW)


def test_unknown_keys_are_ignored_and_optional_keys_may_be_absent() -> None:
    fields = make({"q": 1}).to_map() | {"future": [1, 2]}
    for optional in ("re", "cor", "topic", "prf", "tok"):
        del fields[optional]
    body = msgpack.packb(fields)
    raw = msgpack.packb([body, ALICE.sign(SIGNING_CONTEXT + body)])
    decoded = Envelope.decode(raw, now=NOW)
    assert decoded.body == {"q": 1} and decoded.prf == () and decoded.re is None


def test_trailing_bytes_are_rejected() -> None:
    with pytest.raises(MalformedEnvelope):
        Envelope.decode(encoded() + b"\x00", now=NOW)


def test_skipping_signature_verification_still_needs_the_shape() -> None:
    envelope = make().sign(ALICE)
    assert envelope.signed_body is not None
    unsigned = msgpack.packb([envelope.signed_body, bytes(64)])
    assert Envelope.decode(unsigned, now=NOW, verify_signature=False).id == envelope.id
    with pytest.raises(BadSignature):
        Envelope.decode(unsigned, now=NOW)


def test_encode_needs_a_signature() -> None:
    with pytest.raises(ValueError, match="sign"):
        make().encode()


def test_unencodable_body() -> None:
    with pytest.raises(MalformedEnvelope, match="msgpack"):
        make(object()).sign(ALICE)


def test_signing_twice_is_idempotent() -> None:
    envelope = make({"a": 1})
    first = envelope.sign(ALICE).encode()
    assert envelope.sign(ALICE).encode() == first
