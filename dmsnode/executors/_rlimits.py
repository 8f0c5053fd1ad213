"""The limits of one ``process`` execution, and the rlimits that enforce some of them.

The allocation's resources give memory, cores and disk; ``ExecutionSpec.limits`` adds CPU
time, open files, processes and whether the host's network is shared. Rlimits are set in the
execution's first process (by :mod:`._shim`) and inherited by everything it starts. They are
per process (CPU time, address space, file size) or per user (processes), which is why the
memory, CPU share and process count are enforced by cgroups where a writable hierarchy exists
(:mod:`._cgroups`); docs/executors.md says what holds where.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, final

from ..errors import ExecutionRefused
from ..resources import format_bytes
from ._interface import ExecutionSpec

__all__ = ["DEFAULT_OPEN_FILES", "DEFAULT_PIDS", "KNOWN_LIMITS", "Limits", "RLimit", "limits_for"]

DEFAULT_OPEN_FILES: Final = 1024
DEFAULT_PIDS: Final = 256
#: The keys of ``ExecutionSpec.limits`` this executor understands.
KNOWN_LIMITS: Final = frozenset({"cpu_seconds", "open_files", "pids", "network"})
#: Seconds between SIGXCPU (the soft CPU limit) and SIGKILL (the hard one).
CPU_GRACE: Final = 1

#: ``(resource, soft, hard)``, as ``resource.setrlimit`` takes them.
RLimit = tuple[int, int, int]


@final
@dataclass(frozen=True, slots=True)
class Limits:
    """What one execution may use. ``None``: no limit of that kind."""

    memory: int | None = None
    cpu_cores: float | None = None
    cpu_seconds: int | None = None
    open_files: int = DEFAULT_OPEN_FILES
    pids: int = DEFAULT_PIDS
    file_size: int | None = None
    network: bool = False

    def rlimits(self, *, memory: bool, processes: int | None) -> list[RLimit]:
        """The rlimits for the first process. ``memory``: cap the address space (when no
        cgroup caps memory); ``processes``: the cap on the user's processes (and threads),
        ``None`` for none (the kernel counts them per user: see docs/executors.md)."""
        limits: list[RLimit] = [
            (resource.RLIMIT_CORE, 0, 0),
            (resource.RLIMIT_NOFILE, self.open_files, self.open_files),
        ]
        if self.cpu_seconds is not None:
            limits.append((resource.RLIMIT_CPU, self.cpu_seconds, self.cpu_seconds + CPU_GRACE))
        if memory and self.memory is not None:
            limits.append((resource.RLIMIT_AS, self.memory, self.memory))
        if self.file_size is not None:
            limits.append((resource.RLIMIT_FSIZE, self.file_size, self.file_size))
        if processes is not None:
            limits.append((resource.RLIMIT_NPROC, processes, processes))
        return limits

    def to_dict(self) -> dict[str, int | float | bool | None]:
        return {
            "memory": self.memory,
            "cpu_cores": self.cpu_cores,
            "cpu_seconds": self.cpu_seconds,
            "open_files": self.open_files,
            "pids": self.pids,
            "file_size": self.file_size,
            "network": self.network,
        }

    def describe(self) -> str:
        parts = [
            f"memory {format_bytes(self.memory)}" if self.memory else "",
            f"{self.cpu_cores:g} cores" if self.cpu_cores else "",
            f"{self.cpu_seconds} s of CPU" if self.cpu_seconds is not None else "",
            f"{self.open_files} open files",
            f"{self.pids} processes",
            "host network" if self.network else "no network",
        ]
        return ", ".join(p for p in parts if p)


def limits_for(spec: ExecutionSpec) -> Limits:
    """The limits of ``spec``; refuses unknown keys and values that are not positive."""
    unknown = sorted(set(spec.limits) - KNOWN_LIMITS)
    if unknown:
        raise ExecutionRefused(
            f"allocation {spec.allocation_id}: the process executor does not know the limits "
            f"{', '.join(unknown)} (it knows {', '.join(sorted(KNOWN_LIMITS))})"
        )
    given = spec.limits
    network = _int(given, "network", spec, default=0, low=0)
    if network > 1:
        raise ExecutionRefused(
            f"allocation {spec.allocation_id}: limits.network is 0 (no network) or 1 (the "
            f"host's), not {network}"
        )
    resources = spec.resources
    return Limits(
        memory=resources.ram or None,
        cpu_cores=resources.cpu_cores or None,
        cpu_seconds=_optional(given, "cpu_seconds", spec),
        open_files=_int(given, "open_files", spec, default=DEFAULT_OPEN_FILES),
        pids=_int(given, "pids", spec, default=DEFAULT_PIDS),
        file_size=resources.disk or None,
        network=bool(network) or bool(spec.ports),
    )


def _optional(
    given: Mapping[str, int], key: str, spec: ExecutionSpec, *, low: int = 1
) -> int | None:
    if key not in given:
        return None
    value = given[key]
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ExecutionRefused(
            f"allocation {spec.allocation_id}: limits.{key} must be an integer of at least "
            f"{low}, got {value!r}"
        )
    return value


def _int(
    given: Mapping[str, int], key: str, spec: ExecutionSpec, *, default: int, low: int = 1
) -> int:
    value = _optional(given, key, spec, low=low)
    return default if value is None else value
