"""nuactor: structured-concurrency actors for decentralised apps, on Trio.

Identities are ``did:key`` (Ed25519); messages are signed msgpack envelopes; authorisation is
UCAN 1.0 delegation chains. The public API is what this module re-exports.
"""

from __future__ import annotations

from . import errors, transport, ucan
from ._actor import Actor, Behaviour, Context, behaviour
from ._admission import AdmissionPolicy, Budget
from ._envelope import (
    DEFAULT_TTL_MS,
    MAX_ENVELOPE_SIZE,
    Envelope,
    Handle,
    ReplyTo,
    now_ms,
)
from ._identity import Identity, did_from_public_key, public_key_from_did, verify
from ._keystore import KeyInfo, Keystore
from ._supervision import Restart, Strategy, Supervision
from ._system import ActorSystem, Authorizer, DenyRemote, SystemConfig
from ._trust import Anchor, TrustContext
from .transport import MemoryNetwork, MemoryTransport
from .ucan import (
    ChainValidator,
    Delegation,
    DelegationStore,
    Invocation,
    RevocationStore,
    UcanError,
    validate_invocation,
)

__all__ = [
    "DEFAULT_TTL_MS",
    "MAX_ENVELOPE_SIZE",
    "Actor",
    "ActorSystem",
    "AdmissionPolicy",
    "Anchor",
    "Authorizer",
    "Behaviour",
    "Budget",
    "ChainValidator",
    "Context",
    "Delegation",
    "DelegationStore",
    "DenyRemote",
    "Envelope",
    "Handle",
    "Identity",
    "Invocation",
    "KeyInfo",
    "Keystore",
    "MemoryNetwork",
    "MemoryTransport",
    "ReplyTo",
    "Restart",
    "RevocationStore",
    "Strategy",
    "Supervision",
    "SystemConfig",
    "TrustContext",
    "UcanError",
    "behaviour",
    "did_from_public_key",
    "errors",
    "now_ms",
    "public_key_from_did",
    "transport",
    "ucan",
    "validate_invocation",
    "verify",
]

__version__ = "0.1.0"
