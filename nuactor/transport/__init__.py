"""Transports: the interface, the in-process memory transport, and the Noise secure session.

See docs/network.md, "Secure session".
"""

from __future__ import annotations

from ._base import Transport, TransportHost
from ._errors import (
    DecryptError,
    FrameTooLarge,
    HandshakeError,
    HandshakeTimeout,
    MessageTimeout,
    MessageTooLarge,
    NonceExhausted,
    PeerAuthenticationError,
    PeerMismatch,
    SessionClosed,
    SessionCorrupted,
    TransportError,
)
from ._memory import MemoryNetwork, MemoryTransport
from ._noise import (
    MAX_MESSAGE_LEN,
    MAX_PLAINTEXT_LEN,
    CipherState,
    HandshakeState,
    HashName,
    KeyPair,
    NoiseHash,
    SymmetricState,
)
from ._secure import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MESSAGE_TIMEOUT,
    PROLOGUE,
    STATIC_KEY_SIGNATURE_PREFIX,
    SecureSession,
)

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MESSAGE_TIMEOUT",
    "MAX_MESSAGE_LEN",
    "MAX_PLAINTEXT_LEN",
    "PROLOGUE",
    "STATIC_KEY_SIGNATURE_PREFIX",
    "CipherState",
    "DecryptError",
    "FrameTooLarge",
    "HandshakeError",
    "HandshakeState",
    "HandshakeTimeout",
    "HashName",
    "KeyPair",
    "MemoryNetwork",
    "MemoryTransport",
    "MessageTimeout",
    "MessageTooLarge",
    "NoiseHash",
    "NonceExhausted",
    "PeerAuthenticationError",
    "PeerMismatch",
    "SecureSession",
    "SessionClosed",
    "SessionCorrupted",
    "SymmetricState",
    "Transport",
    "TransportError",
    "TransportHost",
]
