"""The errors :mod:`nuactor.ucan` raises.

Every class carries ``name``: the error name the UCAN working group's fixtures use (for example
``"Expired"``), so that a failure can be reported across implementations with the same word. The
hierarchy has two halves: :class:`MalformedToken` (the bytes or fields are not a valid token,
whoever signed them) and the validation failures (a well-formed token that does not authorise
the invocation).
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import NuactorError

__all__ = [
    "CommandMismatch",
    "DecodeError",
    "Expired",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidCommand",
    "InvalidPolicy",
    "InvalidSignature",
    "InvalidSubject",
    "MalformedToken",
    "MatchError",
    "Revoked",
    "TooEarly",
    "UcanError",
    "UnavailableProof",
    "UnsupportedSignature",
]


class UcanError(NuactorError):
    """Base class of every UCAN error; ``name`` is the spec's name for the failure."""

    name: ClassVar[str] = "UcanError"


# --- malformed tokens ---------------------------------------------------------------------------


class MalformedToken(UcanError, ValueError):
    """The token is not a UCAN 1.0 token: a missing or mistyped field, an unknown tag."""

    name: ClassVar[str] = "MalformedToken"


class DecodeError(MalformedToken):
    """The bytes are not canonical DAG-CBOR, or not the ``[signature, {h, tag: payload}]`` shape."""

    name: ClassVar[str] = "DecodeError"


class UnsupportedSignature(MalformedToken):
    """The varsig header names a signature algorithm or payload encoding this library lacks.

    Only Ed25519 over DAG-CBOR is supported; a token signed otherwise cannot be verified here.
    """

    name: ClassVar[str] = "UnsupportedSignature"


class InvalidCommand(MalformedToken):
    """A command string breaks the spec's syntax (leading ``/``, lowercase, no trailing ``/``)."""

    name: ClassVar[str] = "InvalidCommand"


class InvalidPolicy(MalformedToken):
    """A policy is not valid in the UCAN policy language (bad operator, selector or argument)."""

    name: ClassVar[str] = "InvalidPolicy"


# --- validation failures ------------------------------------------------------------------------


class InvalidClaim(UcanError):
    """The proofs do not establish the claimed authority (no proof, a powerline root, ...)."""

    name: ClassVar[str] = "InvalidClaim"


class CommandMismatch(InvalidClaim):
    """A link's command is not the same as, or a parent of, the next link's command.

    ``name`` is ``"InvalidClaim"`` (the fixtures have no separate name for it); catch this class
    to tell a widened command from other invalid claims.
    """


class UnavailableProof(UcanError):
    """A proof the invocation cites by CID is neither attached nor in the delegation store."""

    name: ClassVar[str] = "UnavailableProof"


class Expired(UcanError):
    """A token's ``exp`` is in the past at validation time."""

    name: ClassVar[str] = "Expired"


class TooEarly(UcanError):
    """A token's ``nbf`` is in the future at validation time."""

    name: ClassVar[str] = "TooEarly"


class InvalidAudience(UcanError):
    """Principal alignment fails: a link's ``aud`` is not the next link's (or invoker's) ``iss``."""

    name: ClassVar[str] = "InvalidAudience"


class InvalidSubject(UcanError):
    """Subject alignment fails: a link is about another subject, or the chain is not rooted in it."""

    name: ClassVar[str] = "InvalidSubject"


class InvalidSignature(UcanError):
    """A token's signature does not verify against its issuer's key."""

    name: ClassVar[str] = "InvalidSignature"


class MatchError(UcanError):
    """The invocation's arguments do not satisfy a delegation's policy."""

    name: ClassVar[str] = "MatchError"


class Revoked(UcanError):
    """A delegation in the chain has been revoked."""

    name: ClassVar[str] = "Revoked"
