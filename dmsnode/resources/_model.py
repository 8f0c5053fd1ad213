"""Amounts of compute: what a machine has, what is onboarded, committed, allocated or free.

Inside the code, units are plain: cores (a float: requests may ask for half a core), Hz, bytes.
People see human units (``dmsnode.resources.format_bytes`` and friends). GPUs are whole devices,
named by vendor and index; an amount of GPUs is the set of devices it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, final, get_args

from ..errors import BadRequest

__all__ = ["VENDORS", "Gpu", "Resources", "Vendor"]

Vendor = Literal["nvidia", "amd", "intel"]
VENDORS: Final[tuple[str, ...]] = get_args(Vendor)
#: Float noise allowed when comparing core counts (0.1 + 0.2 cores fits in 0.3).
_EPSILON: Final = 1e-9


@final
@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU: its vendor, index as the vendor's tool numbers it, model and memory (bytes)."""

    vendor: Vendor
    index: int
    model: str
    vram: int
    uuid: str = ""

    @property
    def key(self) -> str:
        """What names the device across the ledger: ``nvidia:0``."""
        return f"{self.vendor}:{self.index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "vendor": self.vendor,
            "index": self.index,
            "model": self.model,
            "vram": self.vram,
            "uuid": self.uuid,
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "gpu") -> Gpu:
        if not isinstance(data, Mapping):
            raise BadRequest(f"{where} must be a map")
        vendor = data.get("vendor")
        if vendor not in VENDORS:
            raise BadRequest(f"{where}.vendor must be one of {', '.join(VENDORS)}, got {vendor!r}")
        return cls(
            vendor=vendor,
            index=_int(data, "index", where),
            model=_str(data, "model", where, default=""),
            vram=_int(data, "vram", where, default=0),
            uuid=_str(data, "uuid", where, default=""),
        )


@final
@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of compute. ``cpu_hz`` is a clock speed (per core), not an amount: it is
    carried along but not added or subtracted."""

    cpu_cores: float = 0.0
    cpu_hz: int = 0
    ram: int = 0
    disk: int = 0
    gpus: tuple[Gpu, ...] = ()

    def __post_init__(self) -> None:
        for name in ("cpu_cores", "cpu_hz", "ram", "disk"):
            value = getattr(self, name)
            if value < 0:
                raise BadRequest(f"{name} cannot be negative ({value})")
        keys = [g.key for g in self.gpus]
        if len(set(keys)) != len(keys):
            raise BadRequest(f"a GPU is listed twice: {', '.join(sorted(keys))}")

    @property
    def gpu_keys(self) -> frozenset[str]:
        return frozenset(g.key for g in self.gpus)

    def __add__(self, other: Resources) -> Resources:
        overlap = self.gpu_keys & other.gpu_keys
        if overlap:
            raise ValueError(f"GPUs {', '.join(sorted(overlap))} cannot be counted twice")
        return Resources(
            cpu_cores=self.cpu_cores + other.cpu_cores,
            cpu_hz=max(self.cpu_hz, other.cpu_hz),
            ram=self.ram + other.ram,
            disk=self.disk + other.disk,
            gpus=tuple(sorted((*self.gpus, *other.gpus), key=lambda g: g.key)),
        )

    def __sub__(self, other: Resources) -> Resources:
        """What is left of ``self`` once ``other`` is taken; refuses to go below zero."""
        shortfall = other.exceeds(self)
        if shortfall is not None:
            raise ValueError(f"cannot take {shortfall}")
        taken = other.gpu_keys
        return Resources(
            cpu_cores=_clean(self.cpu_cores - other.cpu_cores),
            cpu_hz=self.cpu_hz,
            ram=self.ram - other.ram,
            disk=self.disk - other.disk,
            gpus=tuple(g for g in self.gpus if g.key not in taken),
        )

    def exceeds(self, available: Resources) -> str | None:
        """Why this amount does not fit in ``available`` (``None``: it fits)."""
        if self.cpu_cores > available.cpu_cores + _EPSILON:
            return f"{self.cpu_cores:g} cores (only {available.cpu_cores:g} available)"
        if self.ram > available.ram:
            return f"{self.ram} bytes of RAM (only {available.ram} available)"
        if self.disk > available.disk:
            return f"{self.disk} bytes of disk (only {available.disk} available)"
        missing = self.gpu_keys - available.gpu_keys
        if missing:
            return f"GPU {', '.join(sorted(missing))} (not available)"
        return None

    def is_zero(self) -> bool:
        return self.cpu_cores <= _EPSILON and self.ram == 0 and self.disk == 0 and not self.gpus

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_cores": self.cpu_cores,
            "cpu_hz": self.cpu_hz,
            "ram": self.ram,
            "disk": self.disk,
            "gpus": [g.to_dict() for g in self.gpus],
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "resources") -> Resources:
        """Read an amount, refusing a missing or mistyped field by name."""
        if not isinstance(data, Mapping):
            raise BadRequest(f"{where} must be a map")
        gpus = data.get("gpus", [])
        if not isinstance(gpus, list):
            raise BadRequest(f"{where}.gpus must be a list")
        cores = data.get("cpu_cores", 0)
        if not isinstance(cores, int | float) or isinstance(cores, bool):
            raise BadRequest(f"{where}.cpu_cores must be a number")
        return cls(
            cpu_cores=float(cores),
            cpu_hz=_int(data, "cpu_hz", where, default=0),
            ram=_int(data, "ram", where, default=0),
            disk=_int(data, "disk", where, default=0),
            gpus=tuple(Gpu.from_dict(g, where=f"{where}.gpus[{i}]") for i, g in enumerate(gpus)),
        )


def _clean(cores: float) -> float:
    return 0.0 if abs(cores) <= _EPSILON else round(cores, 9)


def _int(data: Mapping[str, Any], key: str, where: str, *, default: int | None = None) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadRequest(f"{where}.{key} must be an integer")
    return value


def _str(data: Mapping[str, Any], key: str, where: str, *, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise BadRequest(f"{where}.{key} must be a string")
    return value
