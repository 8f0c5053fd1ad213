"""What this machine has (:func:`detect_hardware`) and how busy it is (:func:`usage`).

CPU, RAM and disk come from psutil; GPUs from their vendors' tools (``nvidia-smi``, ``rocm-smi``,
``xpu-smi``), run concurrently, each within a timeout. A missing tool means no GPU of that
vendor. A tool that fails, hangs or prints something unexpected is skipped: its GPUs are left
out and :attr:`Hardware.warnings` says why, so detection itself never fails on a GPU tool.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, final

import psutil  # type: ignore[import-untyped]  # no stubs in the dev dependencies
import trio

from . import _gpu_amd, _gpu_intel, _gpu_nvidia
from ._model import Gpu, Resources, Vendor
from ._probe import ToolFailed, UnexpectedOutput

__all__ = ["Hardware", "Usage", "detect_hardware", "parse_cpuinfo", "usage"]

log = logging.getLogger("dmsnode.resources")

_MHZ: Final = 1_000_000
#: Each vendor's probe: its GPUs, given a timeout per tool call.
_PROBES: Final[Mapping[Vendor, Callable[[float], Awaitable[list[Gpu]]]]] = {
    "nvidia": _gpu_nvidia.probe,
    "amd": _gpu_amd.probe,
    "intel": _gpu_intel.probe,
}
#: The vendors, in the order their GPUs are listed.
_VENDORS: Final[tuple[Vendor, ...]] = ("nvidia", "amd", "intel")
_LABEL: Final[Mapping[Vendor, str]] = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}
#: /proc/cpuinfo keys that name the processor: x86, Raspberry Pi, ARM SoCs, MIPS, POWER, old ARM.
_CPU_MODEL_KEYS: Final = ("model name", "model", "hardware", "cpu model", "cpu", "processor")


@final
@dataclass(frozen=True, slots=True)
class Hardware:
    """The machine as detected.

    ``resources`` is the whole machine: logical cores, the cores' maximum clock (their current
    clock where the maximum is unknown, 0 where both are), total RAM, the total size of the
    filesystem holding the work dir, and the GPUs found.
    """

    resources: Resources
    disk_free: int
    cpu_hz_current: int
    os: str
    arch: str
    cpu_model: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def gpus(self) -> tuple[Gpu, ...]:
        return self.resources.gpus

    def to_dict(self) -> dict[str, Any]:
        return {
            "resources": self.resources.to_dict(),
            "disk_free": self.disk_free,
            "cpu_hz_current": self.cpu_hz_current,
            "os": self.os,
            "arch": self.arch,
            "cpu_model": self.cpu_model,
            "warnings": list(self.warnings),
        }


@final
@dataclass(frozen=True, slots=True)
class Usage:
    """How busy the machine is now. RAM used is what is not available (total − available)."""

    cpu_percent: float
    ram_used: int
    ram_total: int
    disk_used: int
    disk_total: int
    load_average: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_percent": self.cpu_percent,
            "ram_used": self.ram_used,
            "ram_total": self.ram_total,
            "disk_used": self.disk_used,
            "disk_total": self.disk_total,
            "load_average": list(self.load_average),
        }


async def detect_hardware(
    work_dir: Path, *, tools: Collection[Vendor] = _VENDORS, timeout: float = 5.0
) -> Hardware:
    """Detect this machine: psutil for CPU, RAM and the disk of ``work_dir`` (its nearest
    existing parent if it does not exist yet), and the GPU tools of the vendors in ``tools``
    (all by default; ``()`` looks for no GPU), each given ``timeout`` seconds per call."""
    found: dict[Vendor, list[Gpu]] = {}
    failed: dict[Vendor, str] = {}

    async def probe(vendor: Vendor) -> None:
        run = _PROBES[vendor]
        try:
            found[vendor] = await run(timeout)
        except (ToolFailed, UnexpectedOutput) as exc:
            failed[vendor] = f"{_LABEL[vendor]} GPUs not detected: {exc}"
            log.warning("%s", failed[vendor])

    async with trio.open_nursery() as nursery:
        for vendor in _VENDORS:
            if vendor in tools:
                nursery.start_soon(probe, vendor)
        machine = await trio.to_thread.run_sync(_machine, work_dir)
    gpus = tuple(gpu for vendor in _VENDORS for gpu in found.get(vendor, []))
    warnings = [*machine.warnings, *(failed[v] for v in _VENDORS if v in failed)]
    cpu_hz = machine.cpu_hz_max or machine.cpu_hz_current
    if cpu_hz == 0:
        warnings.append("CPU clock unknown: psutil reports no CPU frequency (0 Hz recorded)")
    return Hardware(
        resources=Resources(
            cpu_cores=float(machine.cores),
            cpu_hz=cpu_hz,
            ram=machine.ram,
            disk=machine.disk_total,
            gpus=gpus,
        ),
        disk_free=machine.disk_free,
        cpu_hz_current=machine.cpu_hz_current,
        os=platform.system().lower(),
        arch=platform.machine(),
        cpu_model=machine.cpu_model,
        warnings=tuple(warnings),
    )


async def usage(work_dir: Path, *, interval: float = 0.1) -> Usage:
    """CPU use over the next ``interval`` seconds, RAM in use, the disk of ``work_dir`` (its
    nearest existing parent) and the load average."""
    return await trio.to_thread.run_sync(_usage, work_dir, interval)


def _usage(work_dir: Path, interval: float) -> Usage:
    cpu = psutil.cpu_percent(interval)
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(existing_parent(work_dir)))
    one, five, fifteen = psutil.getloadavg()
    return Usage(
        cpu_percent=float(cpu),
        ram_used=int(memory.total - memory.available),
        ram_total=int(memory.total),
        disk_used=int(disk.used),
        disk_total=int(disk.total),
        load_average=(one, five, fifteen),
    )


def parse_cpuinfo(text: str) -> str:
    """The processor's name in ``/proc/cpuinfo`` (``""`` if it names none)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and value.strip() and key not in fields:
            fields[key] = value.strip()
    for key in _CPU_MODEL_KEYS:
        value = fields.get(key, "")
        if value and not value.isdigit():  # x86's "processor : 0" is a number, not a name
            return value
    return ""


def existing_parent(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists (a work dir may not be created yet)."""
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@dataclass(frozen=True, slots=True)
class _Machine:
    cores: int
    cpu_hz_max: int
    cpu_hz_current: int
    ram: int
    disk_total: int
    disk_free: int
    cpu_model: str
    warnings: tuple[str, ...]


def _machine(work_dir: Path) -> _Machine:
    """The psutil part of detection (blocking: run in a thread)."""
    warnings: list[str] = []
    cores = psutil.cpu_count(logical=True)
    if not cores:
        warnings.append("psutil cannot count the CPU cores: 1 core recorded")
        cores = 1
    try:
        frequency = psutil.cpu_freq()
    except (NotImplementedError, OSError):
        frequency = None
    disk = psutil.disk_usage(str(existing_parent(work_dir)))
    try:
        cpu_model = parse_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        cpu_model = ""
    return _Machine(
        cores=cores,
        cpu_hz_max=round(frequency.max * _MHZ) if frequency else 0,
        cpu_hz_current=round(frequency.current * _MHZ) if frequency else 0,
        ram=int(psutil.virtual_memory().total),
        disk_total=int(disk.total),
        disk_free=int(disk.free),
        cpu_model=cpu_model or platform.processor(),
        warnings=tuple(warnings),
    )
