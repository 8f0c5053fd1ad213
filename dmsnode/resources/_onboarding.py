"""The limits on the share of a machine a node onboards (NuNet's rules, DESIGN §3.3).

- CPU: at least 1 core and at most the machine's (logical) cores. Cores are a number, not
  necessarily whole (NuNet's are a float too): 2.5 cores is a valid share.
- CPU clock: not faster than the machine's, when the machine's is known.
- RAM: between 10% and 90% of the machine's.
- GPUs: whole devices. Each onboarded GPU must be one of the machine's (same ``vendor:index``)
  and claim no more VRAM than the device has. Onboarding a GPU onboards all of its VRAM, so
  NuNet's "VRAM between 10% and 90%" is not a percentage here: a job gets a device, not a slice
  of its memory, and a 90% cap on the total would forbid onboarding the only GPU of a machine.
- Disk: more than nothing, and no more than is free in the work directory.
- Never below what is in use: everything allocated or committed must still fit.
"""

from __future__ import annotations

from ..errors import OnboardingRefused
from ._model import Resources
from ._units import format_bytes, format_cores, format_hz

__all__ = ["below_in_use", "check_onboarding"]


def check_onboarding(
    request: Resources, machine: Resources, *, disk_free: int, allocated: Resources
) -> None:
    """Refuse, with :class:`OnboardingRefused` naming every limit broken, a share ``request``
    of ``machine`` that breaks a limit above. ``disk_free`` is the free space (bytes) of the work
    directory; ``allocated`` is what is allocated or committed now."""
    problems = [
        *_cpu(request, machine),
        *_ram(request.ram, machine.ram),
        *_gpus(request, machine),
        *_disk(request.disk, disk_free),
        *below_in_use(request, allocated),
    ]
    if problems:
        raise OnboardingRefused("; ".join(problems))


def _cpu(request: Resources, machine: Resources) -> list[str]:
    problems = []
    cores = request.cpu_cores
    if cores < 1:
        problems.append(f"CPU {format_cores(cores)} is less than the minimum of 1 core")
    elif cores > machine.cpu_cores:
        problems.append(
            f"CPU {format_cores(cores)} is more than this machine's {machine.cpu_cores:g}"
        )
    if machine.cpu_hz and request.cpu_hz > machine.cpu_hz:
        problems.append(
            f"CPU clock {format_hz(request.cpu_hz)} is faster than this machine's"
            f" {format_hz(machine.cpu_hz)}"
        )
    return problems


def _ram(ram: int, machine_ram: int) -> list[str]:
    # Integer arithmetic, so the limits are exact: 10 * ram >= machine and 10 * ram <= 9 * machine.
    if ram * 10 < machine_ram:
        asked, minimum = _bytes_pair(ram, -(-machine_ram // 10))
        return [
            f"RAM {asked} is less than 10% of this machine's {format_bytes(machine_ram)}"
            f" (minimum {minimum})"
        ]
    if ram * 10 > machine_ram * 9:
        asked, limit = _bytes_pair(ram, machine_ram * 9 // 10)
        return [
            f"RAM {asked} is more than 90% of this machine's {format_bytes(machine_ram)}"
            f" (limit {limit})"
        ]
    return []


def _gpus(request: Resources, machine: Resources) -> list[str]:
    problems = []
    devices = {gpu.key: gpu for gpu in machine.gpus}
    has = ", ".join(sorted(devices)) if devices else "no GPU"
    for gpu in request.gpus:
        device = devices.get(gpu.key)
        if device is None:
            problems.append(f"GPU {gpu.key} is not on this machine (it has {has})")
        elif gpu.vram > device.vram:
            problems.append(
                f"GPU {gpu.key} has {format_bytes(device.vram)} of VRAM,"
                f" not {format_bytes(gpu.vram)}"
            )
    return problems


def _disk(disk: int, disk_free: int) -> list[str]:
    if disk <= 0:
        return ["disk: onboard some disk (0 B asked)"]
    if disk > disk_free:
        asked, free = _bytes_pair(disk, disk_free)
        return [f"disk {asked} is more than the {free} free in the work directory"]
    return []


def below_in_use(request: Resources, allocated: Resources) -> list[str]:
    """What of ``allocated`` (allocated or committed) would not fit in the share ``request``."""
    problems = []
    if allocated.cpu_cores > request.cpu_cores + 1e-9:
        problems.append(
            f"CPU {format_cores(request.cpu_cores)} is below the {format_cores(allocated.cpu_cores)}"
            " allocated or committed"
        )
    for what, share, used in (
        ("RAM", request.ram, allocated.ram),
        ("disk", request.disk, allocated.disk),
    ):
        if used > share:
            share_text, used_text = _bytes_pair(share, used)
            problems.append(f"{what} {share_text} is below the {used_text} allocated or committed")
    for key in sorted(allocated.gpu_keys - request.gpu_keys):
        problems.append(f"GPU {key} is allocated or committed, so it must stay onboarded")
    return problems


def _bytes_pair(a: int, b: int) -> tuple[str, str]:
    """``a`` and ``b`` in human units, or in bytes when rounding would make them look equal."""
    a_text, b_text = format_bytes(a), format_bytes(b)
    return (a_text, b_text) if a_text != b_text or a == b else (f"{a} B", f"{b} B")
