"""Control frames: what two network peers say to each other besides the systems' frames.

A control frame is the byte :data:`CONTROL` (``0x02``) followed by a msgpack map whose ``"t"``
names the message. They are handled inside the network layer and never reach the system:

- ``{"t": "hello", "addrs": [multiaddr, ...]}``: the first message on every session, both ways:
  where the sender listens (so a peer that was dialled can dial back after a drop).
- ``{"t": "peers", "peers": [{"did": did, "addrs": [multiaddr, ...]}, ...]}``: peer exchange,
  sent after ``hello`` and in answer to ``getpeers``.
- ``{"t": "getpeers"}``: ask for a ``peers`` message.
- ``{"t": "ping", "n": int}`` / ``{"t": "pong", "n": int}``: liveness and round-trip time.
- ``{"t": "retire"}``: "I will send nothing more on this session": closes a duplicate session
  without losing the frames already on their way (see ``_network``).

Decoding is strict about types and sizes and lenient about content: an unknown ``"t"`` or an
unknown key is ignored (newer peers may say more); an address or DID that does not parse is
dropped on its own, not with its whole message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, final

import msgpack

from .._identity import public_key_from_did
from ..errors import InvalidDid
from ._errors import InvalidAddress
from ._multiaddr import Multiaddr, parse_multiaddr
from ._wire import CONTROL

__all__ = [
    "CONTROL",
    "MAX_ADDRESSES",
    "MAX_CONTROL_SIZE",
    "MAX_EXCHANGED_PEERS",
    "ControlMessage",
    "GetPeers",
    "Hello",
    "Peers",
    "Ping",
    "Pong",
    "Retire",
    "decode_control",
    "encode_control",
]

MAX_CONTROL_SIZE: Final = 64 * 1024
MAX_ADDRESSES: Final = 8
"""Addresses kept per peer, and accepted per peer in a message."""
MAX_EXCHANGED_PEERS: Final = 32
"""Peers per ``peers`` message."""
_CONTROL_PREFIX: Final = bytes([CONTROL])


@final
@dataclass(frozen=True, slots=True)
class Hello:
    addrs: tuple[Multiaddr, ...]


@final
@dataclass(frozen=True, slots=True)
class Peers:
    peers: tuple[tuple[str, tuple[Multiaddr, ...]], ...]


@final
@dataclass(frozen=True, slots=True)
class GetPeers:
    pass


@final
@dataclass(frozen=True, slots=True)
class Ping:
    n: int


@final
@dataclass(frozen=True, slots=True)
class Pong:
    n: int


@final
@dataclass(frozen=True, slots=True)
class Retire:
    pass


ControlMessage = Hello | Peers | GetPeers | Ping | Pong | Retire


def encode_control(message: ControlMessage) -> bytes:
    """The control frame (kind byte included) carrying ``message``."""
    body: dict[str, Any]
    if isinstance(message, Hello):
        body = {"t": "hello", "addrs": [str(a) for a in message.addrs[:MAX_ADDRESSES]]}
    elif isinstance(message, Peers):
        body = {
            "t": "peers",
            "peers": [
                {"did": did, "addrs": [str(a) for a in addrs[:MAX_ADDRESSES]]}
                for did, addrs in message.peers[:MAX_EXCHANGED_PEERS]
            ],
        }
    elif isinstance(message, GetPeers):
        body = {"t": "getpeers"}
    elif isinstance(message, Ping):
        body = {"t": "ping", "n": message.n}
    elif isinstance(message, Pong):
        body = {"t": "pong", "n": message.n}
    else:
        body = {"t": "retire"}
    packed: bytes = msgpack.packb(body)
    return _CONTROL_PREFIX + packed


def _addresses(value: object) -> tuple[Multiaddr, ...]:
    if not isinstance(value, list):
        return ()
    found: list[Multiaddr] = []
    for item in value[:MAX_ADDRESSES]:
        try:
            address = parse_multiaddr(item)
        except InvalidAddress:
            continue
        if address.dialable:
            found.append(address.with_did(None))
    return tuple(found)


def _did(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        public_key_from_did(value)
    except InvalidDid:
        return None
    return value


def _nonce(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        return None
    return value


def decode_control(frame: bytes) -> ControlMessage | None:
    """The message in a control frame, or ``None`` if it is malformed, oversized or unknown."""
    if len(frame) > MAX_CONTROL_SIZE or frame[:1] != _CONTROL_PREFIX:
        return None
    try:
        body = msgpack.unpackb(
            memoryview(frame)[1:],
            raw=False,
            strict_map_key=True,
            max_bin_len=0,
            max_ext_len=0,
        )
    except Exception:  # msgpack raises assorted ValueError subclasses
        return None
    if not isinstance(body, dict):
        return None
    kind = body.get("t")
    if kind == "ping" or kind == "pong":
        n = _nonce(body.get("n"))
        if n is None:
            return None
        return Ping(n) if kind == "ping" else Pong(n)
    if kind == "hello":
        return Hello(_addresses(body.get("addrs")))
    if kind == "peers":
        entries = body.get("peers")
        if not isinstance(entries, list):
            return None
        peers: list[tuple[str, tuple[Multiaddr, ...]]] = []
        for entry in entries[:MAX_EXCHANGED_PEERS]:
            if not isinstance(entry, dict):
                continue
            did = _did(entry.get("did"))
            addrs = _addresses(entry.get("addrs"))
            if did is not None and addrs:
                peers.append((did, addrs))
        return Peers(tuple(peers))
    if kind == "getpeers":
        return GetPeers()
    if kind == "retire":
        return Retire()
    return None
