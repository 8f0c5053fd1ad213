"""Multiaddr parsing: the accepted forms, canonical formatting, and strict typed refusals."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nuactor import Identity
from nuactor.transport import InvalidAddress, Multiaddr, TransportError, parse_multiaddr

DID = Identity.from_seed(bytes(range(32))).did

# --- strategies ---------------------------------------------------------------------------------

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(_label, min_size=1, max_size=4).map(".".join)
ip4s = st.ip_addresses(v=4).map(str)
ip6s = st.ip_addresses(v=6).map(str)
dids = st.sampled_from([DID, *(Identity.from_seed(bytes([i]) * 32).did for i in range(3)), None])


@st.composite
def multiaddrs(draw: st.DrawFn) -> Multiaddr:
    kind = draw(st.sampled_from(["ip4", "ip6", "dns", "dns4", "dns6"]))
    host = draw(ip4s if kind == "ip4" else ip6s if kind == "ip6" else hostnames)
    return Multiaddr(
        kind,  # type: ignore[arg-type]
        host,
        draw(st.integers(0, 65535)),
        draw(st.sampled_from(["tcp", "ws"])),  # type: ignore[arg-type]
        draw(dids),
    )


# --- accepted forms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/ip4/127.0.0.1/tcp/9000", Multiaddr("ip4", "127.0.0.1", 9000)),
        ("/ip4/127.0.0.1/tcp/9001/ws", Multiaddr("ip4", "127.0.0.1", 9001, "ws")),
        ("/ip6/::1/tcp/0", Multiaddr("ip6", "::1", 0)),
        ("/ip6/fe80::1/tcp/80/ws", Multiaddr("ip6", "fe80::1", 80, "ws")),
        ("/dns/example.com/tcp/443/ws", Multiaddr("dns", "example.com", 443, "ws")),
        ("/dns4/localhost/tcp/1", Multiaddr("dns4", "localhost", 1)),
        ("/dns6/a-b.c/tcp/65535", Multiaddr("dns6", "a-b.c", 65535)),
        (f"/ip4/10.0.0.1/tcp/9000/p2p/{DID}", Multiaddr("ip4", "10.0.0.1", 9000, "tcp", DID)),
        (f"/dns/n1/tcp/9/ws/p2p/{DID}", Multiaddr("dns", "n1", 9, "ws", DID)),
    ],
)
def test_accepted_forms(text: str, expected: Multiaddr) -> None:
    parsed = parse_multiaddr(text)
    assert parsed == expected
    assert str(parsed) == text


def test_normalises_ip6_and_dns_case() -> None:
    assert str(parse_multiaddr("/ip6/0:0:0:0:0:0:0:1/tcp/5")) == "/ip6/::1/tcp/5"
    assert str(parse_multiaddr("/dns/Example.COM/tcp/5")) == "/dns/example.com/tcp/5"


def test_dialable_and_pinning() -> None:
    assert not parse_multiaddr("/ip4/127.0.0.1/tcp/0").dialable
    assert not parse_multiaddr("/ip4/0.0.0.0/tcp/9").dialable
    assert not parse_multiaddr("/ip6/::/tcp/9").dialable
    address = parse_multiaddr("/ip4/127.0.0.1/tcp/9")
    assert address.dialable
    assert str(address.with_did(DID)) == f"/ip4/127.0.0.1/tcp/9/p2p/{DID}"
    assert address.with_did(DID).with_did(None) == address


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "starts with '/'"),
        ("ip4/1.2.3.4/tcp/1", "starts with '/'"),
        ("/ip4/1.2.3.4/tcp/1/", "empty component"),
        ("/ip4//tcp/1", "empty component"),
        ("/ip4/1.2.3.4/tcp", "incomplete"),
        ("/udp/1.2.3.4/tcp/1", "unknown protocol 'udp'"),
        ("/ip4/1.2.3.4/udp/1", "expected 'tcp'"),
        ("/ip4/1.2.3.4/tcp/65536", "invalid TCP port"),
        ("/ip4/1.2.3.4/tcp/080", "invalid TCP port"),
        ("/ip4/1.2.3.4/tcp/-1", "invalid TCP port"),
        ("/ip4/1.2.3.4/tcp/ 1", "invalid TCP port"),
        ("/ip4/256.1.1.1/tcp/1", "dotted-quad"),
        ("/ip4/01.1.1.1/tcp/1", "dotted-quad"),
        ("/ip4/::1/tcp/1", "dotted-quad"),
        ("/ip6/1.2.3.4/tcp/1", "IPv6"),
        ("/ip6/fe80::1%eth0/tcp/1", "zone"),
        ("/dns/-bad.com/tcp/1", "invalid label"),
        ("/dns/bad..com/tcp/1", "invalid label"),
        ("/dns/ünï.com/tcp/1", "ASCII"),
        ("/dns/" + "a" * 64 + "/tcp/1", "invalid label"),
        ("/ip4/1.2.3.4/tcp/1/wss", "unexpected component 'wss'"),
        ("/ip4/1.2.3.4/tcp/1/ws/ws", "unexpected component 'ws'"),
        ("/ip4/1.2.3.4/tcp/1/p2p", "exactly one did"),
        (f"/ip4/1.2.3.4/tcp/1/p2p/{DID}/ws", "exactly one did"),
        ("/ip4/1.2.3.4/tcp/1/p2p/did:key:nope", "did:key"),
        ("/ip4/1.2.3.4/tcp/1/p2p/QmPeerId", "did:key"),
        ("/" + "x" * 600, "at most 512"),
    ],
)
def test_refusals_name_the_problem(text: str, complaint: str) -> None:
    with pytest.raises(InvalidAddress, match=complaint.replace("(", r"\(")):
        parse_multiaddr(text)


def test_invalid_address_is_a_transport_and_value_error() -> None:
    assert issubclass(InvalidAddress, TransportError)
    assert issubclass(InvalidAddress, ValueError)
    with pytest.raises(InvalidAddress, match="is a string"):
        parse_multiaddr(b"/ip4/1.2.3.4/tcp/1")  # type: ignore[arg-type]


def test_direct_construction_is_checked() -> None:
    with pytest.raises(InvalidAddress):
        Multiaddr("ip4", "1.2.3.4", 70000)
    with pytest.raises(InvalidAddress):
        Multiaddr("ip9", "1.2.3.4", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidAddress):
        Multiaddr("ip4", "1.2.3.4", 1, "udp")  # type: ignore[arg-type]
    with pytest.raises(InvalidAddress):
        Multiaddr("ip4", "1.2.3.4", True)
    with pytest.raises(InvalidAddress):
        Multiaddr("ip4", "1.2.3.4", 1, "tcp", "did:web:example.com")


# --- properties ---------------------------------------------------------------------------------


@given(multiaddrs())
def test_round_trip(address: Multiaddr) -> None:
    text = str(address)
    assert parse_multiaddr(text) == address
    assert str(parse_multiaddr(text)) == text


@given(st.text(max_size=80))
def test_garbage_raises_only_the_typed_error(text: str) -> None:
    try:
        parsed = parse_multiaddr(text)
    except InvalidAddress:
        return
    assert parse_multiaddr(str(parsed)) == parsed


_component = st.one_of(
    st.sampled_from(["ip4", "ip6", "dns", "dns4", "tcp", "ws", "p2p", "0", "65535", DID, "::"]),
    st.text(alphabet="0123456789abcdef.:-%", max_size=12),
)


@given(st.lists(_component, max_size=7))
def test_near_misses_raise_only_the_typed_error(parts: list[str]) -> None:
    text = "/" + "/".join(parts)
    try:
        parsed = parse_multiaddr(text)
    except InvalidAddress:
        return
    assert str(parsed) == str(parse_multiaddr(str(parsed)))
    if parsed.host_kind == "ip6":
        assert ipaddress.IPv6Address(parsed.host)
