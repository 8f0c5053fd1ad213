"""Errors of the transport layer: the Noise core, the secure session, addresses and the network.

Every one derives from :class:`TransportError` (itself a :class:`~nuactor.errors.NuactorError`),
so a caller can catch the whole layer at once or one precise failure.
"""

from __future__ import annotations

from ..errors import NuactorError

__all__ = [
    "DecryptError",
    "DialError",
    "FrameTooLarge",
    "HandshakeError",
    "HandshakeTimeout",
    "InvalidAddress",
    "MessageTimeout",
    "MessageTooLarge",
    "NonceExhausted",
    "PeerAuthenticationError",
    "PeerMismatch",
    "PingTimeout",
    "SessionClosed",
    "SessionCorrupted",
    "TransportError",
]


class TransportError(NuactorError):
    """Base class of every error the transport layer raises."""


class HandshakeError(TransportError):
    """The Noise handshake failed: malformed or unauthentic message, lost connection, misuse."""


class HandshakeTimeout(HandshakeError):
    """The peer did not complete the handshake in time."""


class PeerAuthenticationError(HandshakeError):
    """The peer's handshake payload does not prove an identity (missing, malformed, bad signature)."""


class PeerMismatch(PeerAuthenticationError):
    """The peer proved an identity, but not the one the dialler expected."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"expected peer {expected}, but the peer proved it is {actual}")
        self.expected = expected
        self.actual = actual


class SessionClosed(TransportError):
    """The session is closed: by this side, by the peer, or after an earlier failure."""


class SessionCorrupted(TransportError):
    """The peer sent bytes that do not follow the session's framing (the session is closed)."""


class DecryptError(SessionCorrupted):
    """A Noise message failed authentication: it was forged, altered, replayed or reordered."""


class FrameTooLarge(TransportError):
    """A Noise message would exceed 65535 bytes, the protocol's hard limit."""


class MessageTooLarge(FrameTooLarge):
    """An application message is larger than the session's ``max_message_size``.

    Raised to a sender before anything is sent (the session stays usable), and to a receiver
    when the peer declares such a length (nothing is buffered; the session is closed).
    """


class MessageTimeout(TransportError):
    """A message started arriving but was not complete in time (the session is closed)."""


class NonceExhausted(TransportError):
    """A cipher state used its last nonce; the session must be replaced (it is closed)."""


class InvalidAddress(TransportError, ValueError):
    """A string is not a multiaddr this network can use; the message names what is wrong."""


class DialError(TransportError):
    """No session could be opened to an address: refused, unreachable, timed out, or not a
    nuactor peer. A failed handshake raises its own :class:`HandshakeError` instead."""


class PingTimeout(TransportError, TimeoutError):
    """A peer did not answer a ping in time."""
