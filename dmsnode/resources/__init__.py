"""Resources: hardware detection, onboarding and the ledger of what is committed and allocated
(DESIGN §3.3). See docs/resources.md."""

from __future__ import annotations

from ._model import VENDORS, Gpu, Resources, Vendor

__all__ = ["VENDORS", "Gpu", "Resources", "Vendor"]
