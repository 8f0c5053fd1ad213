"""UCAN 1.0 for nuactor: delegations, invocations, the policy language and chain validation.

Tokens are the UCAN working group's DAG-CBOR envelopes (Ed25519 signatures, CIDv1 names), so any
UCAN 1.0 implementation can read ours and we can read theirs. See ``docs/capabilities.md``.

>>> from nuactor import Identity
>>> from nuactor.ucan import Delegation, Invocation, validate_invocation
>>> node, alice = Identity.generate(), Identity.generate()
>>> grant = Delegation.issue(node, alice.did, node.did, "/dms", [["==", ".n", 1]])
>>> call = Invocation.issue(alice, node.did, "/dms/ping", {"n": 1}, [grant.cid])
>>> validate_invocation(call, {grant.cid: grant}) == (grant,)
True
"""

from __future__ import annotations

from ._command import check_command, command_covers
from ._delegation import DEFAULT_DELEGATION_TTL, DLG_TAG, DLG_TAG_RC1, Delegation
from ._errors import (
    CommandMismatch,
    DecodeError,
    Expired,
    InvalidAudience,
    InvalidClaim,
    InvalidCommand,
    InvalidPolicy,
    InvalidSignature,
    InvalidSubject,
    MalformedToken,
    MatchError,
    Revoked,
    TooEarly,
    UcanError,
    UnavailableProof,
    UnsupportedSignature,
)
from ._fields import DEFAULT
from ._invocation import DEFAULT_INVOCATION_TTL, INV_TAG, INV_TAG_RC1, Invocation
from ._ipld import Ipld, ipld_equal
from ._policy import (
    AllOf,
    And,
    AnyOf,
    Equality,
    Inequality,
    Like,
    Not,
    Or,
    Policy,
    Statement,
    glob_match,
)
from ._selector import UNRESOLVED, Selector
from ._store import DelegationStore, RevocationStore
from ._validate import ChainValidator, validate_invocation
from ._varsig import ED25519_DAG_CBOR, VarsigHeader

__all__ = [
    "DEFAULT",
    "DEFAULT_DELEGATION_TTL",
    "DEFAULT_INVOCATION_TTL",
    "DLG_TAG",
    "DLG_TAG_RC1",
    "ED25519_DAG_CBOR",
    "INV_TAG",
    "INV_TAG_RC1",
    "UNRESOLVED",
    "AllOf",
    "And",
    "AnyOf",
    "ChainValidator",
    "CommandMismatch",
    "DecodeError",
    "Delegation",
    "DelegationStore",
    "Equality",
    "Expired",
    "Inequality",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidCommand",
    "InvalidPolicy",
    "InvalidSignature",
    "InvalidSubject",
    "Invocation",
    "Ipld",
    "Like",
    "MalformedToken",
    "MatchError",
    "Not",
    "Or",
    "Policy",
    "RevocationStore",
    "Revoked",
    "Selector",
    "Statement",
    "TooEarly",
    "UcanError",
    "UnavailableProof",
    "UnsupportedSignature",
    "VarsigHeader",
    "check_command",
    "command_covers",
    "glob_match",
    "ipld_equal",
    "validate_invocation",
]
