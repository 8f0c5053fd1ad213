"""Transports: the interface, the in-process memory transport, the Noise secure session, and
the TCP/WebSocket network with its peer table.

See docs/network.md.
"""

from __future__ import annotations

from ._base import Transport, TransportHost
from ._control import ControlMessage, GetPeers, Hello, Peers, Ping, Pong, Retire
from ._errors import (
    DecryptError,
    DialError,
    FrameTooLarge,
    HandshakeError,
    HandshakeTimeout,
    InvalidAddress,
    MessageTimeout,
    MessageTooLarge,
    NonceExhausted,
    PeerAuthenticationError,
    PeerMismatch,
    PingTimeout,
    SessionClosed,
    SessionCorrupted,
    TransportError,
)
from ._memory import MemoryNetwork, MemoryTransport
from ._multiaddr import Multiaddr, parse_multiaddr
from ._network import Network, NetworkConfig
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
from ._peers import PeerRecord
from ._secure import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MESSAGE_TIMEOUT,
    PROLOGUE,
    STATIC_KEY_SIGNATURE_PREFIX,
    SecureSession,
)
from ._wire import BATCH, CONTROL
from ._ws import WS_RESOURCE, WebSocketStream

__all__ = [
    "BATCH",
    "CONTROL",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MESSAGE_TIMEOUT",
    "MAX_MESSAGE_LEN",
    "MAX_PLAINTEXT_LEN",
    "PROLOGUE",
    "STATIC_KEY_SIGNATURE_PREFIX",
    "WS_RESOURCE",
    "CipherState",
    "ControlMessage",
    "DecryptError",
    "DialError",
    "FrameTooLarge",
    "GetPeers",
    "HandshakeError",
    "HandshakeState",
    "HandshakeTimeout",
    "HashName",
    "Hello",
    "InvalidAddress",
    "KeyPair",
    "MemoryNetwork",
    "MemoryTransport",
    "MessageTimeout",
    "MessageTooLarge",
    "Multiaddr",
    "Network",
    "NetworkConfig",
    "NoiseHash",
    "NonceExhausted",
    "PeerAuthenticationError",
    "PeerMismatch",
    "PeerRecord",
    "Peers",
    "Ping",
    "PingTimeout",
    "Pong",
    "Retire",
    "SecureSession",
    "SessionClosed",
    "SessionCorrupted",
    "SymmetricState",
    "Transport",
    "TransportError",
    "TransportHost",
    "WebSocketStream",
    "parse_multiaddr",
]
