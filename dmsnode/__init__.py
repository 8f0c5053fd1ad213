"""dmsnode: a NuNet Device Management Service node built on nuactor."""

from __future__ import annotations

__version__ = "0.1.0"
