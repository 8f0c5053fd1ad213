"""The network's session messages: one frame, or a batch of frames.

Every message on a network session is one frame, whose first byte is its kind:

- ``0x00`` ENVELOPE and ``0x01`` GOSSIP: the system's frames (``nuactor._frames``), handed to
  ``host.receive_frame`` as they are;
- ``0x02`` CONTROL: the network's own messages (``_control``), never passed to the system;
- ``0x03`` BATCH: several of the above queued together, each preceded by its length
  (uint32 big-endian). A writer that finds several frames waiting sends them as one batch: one
  AEAD operation and one write instead of one each. Batches do not nest.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from ._errors import SessionCorrupted

__all__ = [
    "BATCH",
    "BATCH_FRAME_OVERHEAD",
    "CONTROL",
    "MAX_BATCH_SIZE",
    "encode_batch",
    "split_batch",
]

CONTROL: Final = 0x02
BATCH: Final = 0x03
BATCH_FRAME_OVERHEAD: Final = 4
MAX_BATCH_SIZE: Final = 65515 - 1
"""A batch fills at most one Noise transport message (one AEAD call)."""

_LEN: Final = struct.Struct(">I")
_BATCH_PREFIX: Final = bytes([BATCH])


def encode_batch(frames: Sequence[bytes]) -> bytes:
    """One BATCH frame carrying ``frames`` (none of them a batch)."""
    pack = _LEN.pack
    parts = [_BATCH_PREFIX]
    for frame in frames:
        parts.append(pack(len(frame)))
        parts.append(frame)
    return b"".join(parts)


def split_batch(message: bytes) -> list[bytes]:
    """The frames of a BATCH frame; :class:`SessionCorrupted` if it is malformed."""
    frames: list[bytes] = []
    unpack = _LEN.unpack_from
    end = len(message)
    offset = 1
    while offset < end:
        if offset + 4 > end:
            raise SessionCorrupted("a batch ends inside a frame length")
        (size,) = unpack(message, offset)
        offset += 4
        if size == 0 or offset + size > end:
            raise SessionCorrupted("a batch frame is empty or runs past the batch")
        if message[offset] == BATCH:
            raise SessionCorrupted("a batch holds another batch")
        frames.append(message[offset : offset + size])
        offset += size
    if not frames:
        raise SessionCorrupted("an empty batch")
    return frames
