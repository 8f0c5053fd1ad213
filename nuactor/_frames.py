"""What a transport carries: a kind byte, then the kind's payload.

- ``ENVELOPE``: an encoded envelope for the receiving system.
- ``GOSSIP``: one byte of remaining hops, then an encoded broadcast envelope, which the receiver
  delivers to its subscribers and may forward (the hop count is outside the signature, so
  forwarders can decrement it).
"""

from __future__ import annotations

from typing import Final

ENVELOPE: Final = 0x00
GOSSIP: Final = 0x01

_ENVELOPE_PREFIX: Final = bytes([ENVELOPE])


def envelope_frame(encoded: bytes) -> bytes:
    return _ENVELOPE_PREFIX + encoded


def gossip_frame(encoded: bytes, hops: int) -> bytes:
    return bytes([GOSSIP, max(0, min(hops, 255))]) + encoded
