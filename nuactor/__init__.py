"""nuactor: structured-concurrency actors for decentralised apps, on Trio.

Identities are ``did:key`` (Ed25519); messages are signed msgpack envelopes; authorisation is
UCAN 1.0 delegation chains. The public API is what this module re-exports.
"""

from __future__ import annotations

from . import errors, transport
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
from .transport import MemoryNetwork, MemoryTransport

__all__ = [
    "DEFAULT_TTL_MS",
    "MAX_ENVELOPE_SIZE",
    "Actor",
    "ActorSystem",
    "AdmissionPolicy",
    "Authorizer",
    "Behaviour",
    "Budget",
    "Context",
    "DenyRemote",
    "Envelope",
    "Handle",
    "Identity",
    "KeyInfo",
    "Keystore",
    "MemoryNetwork",
    "MemoryTransport",
    "ReplyTo",
    "Restart",
    "Strategy",
    "Supervision",
    "SystemConfig",
    "behaviour",
    "did_from_public_key",
    "errors",
    "now_ms",
    "public_key_from_did",
    "transport",
    "verify",
]

__version__ = "0.1.0"
