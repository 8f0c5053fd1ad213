"""Resources: hardware detection, onboarding and the ledger of what is committed and allocated
(DESIGN §3.3). See docs/resources.md."""

from __future__ import annotations

from ..errors import (
    CommitmentExpired,
    DuplicateAllocation,
    LedgerError,
    NotEnoughResources,
    NotOnboarded,
    OffboardRefused,
    OnboardingRefused,
    PortUnavailable,
    UnknownAllocation,
)
from ._hardware import Hardware, Usage, detect_hardware, usage
from ._ledger import Allocation, Clock, Commitment, Ledger, LedgerState, shortfall
from ._model import VENDORS, Gpu, Resources, Vendor
from ._onboarding import check_onboarding
from ._ports import PortRequest
from ._units import format_bytes, format_cores, format_hz, parse_bytes, parse_hz

__all__ = [
    "VENDORS",
    "Allocation",
    "Clock",
    "Commitment",
    "CommitmentExpired",
    "DuplicateAllocation",
    "Gpu",
    "Hardware",
    "Ledger",
    "LedgerError",
    "LedgerState",
    "NotEnoughResources",
    "NotOnboarded",
    "OffboardRefused",
    "OnboardingRefused",
    "PortRequest",
    "PortUnavailable",
    "Resources",
    "UnknownAllocation",
    "Usage",
    "Vendor",
    "check_onboarding",
    "detect_hardware",
    "format_bytes",
    "format_cores",
    "format_hz",
    "parse_bytes",
    "parse_hz",
    "shortfall",
    "usage",
]
