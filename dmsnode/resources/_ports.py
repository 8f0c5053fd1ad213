"""Public ports for jobs: what a job asks for (:class:`PortRequest`) and how they are picked
inside ``job.port_range`` (:func:`reserve_ports`). The ledger calls this inside its transaction,
with the ports already booked, so the choice and the booking are one atomic step."""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any, final

from ..errors import BadRequest, ConfigError, PortUnavailable

__all__ = ["PortRequest", "check_port_range", "reserve_ports"]

#: The lowest port a job may be given: port 0 means "any" to the kernel, not a port.
_LOWEST = 1
_HIGHEST = 65535


@final
@dataclass(frozen=True, slots=True)
class PortRequest:
    """The public ports a job wants: ``static`` ones by number, and ``dynamic`` (a count) that
    the node picks among its free ones."""

    static: tuple[int, ...] = ()
    dynamic: int = 0

    def __post_init__(self) -> None:
        for port in self.static:
            if not isinstance(port, int) or isinstance(port, bool):
                raise BadRequest(f"ports.static must hold port numbers, got {port!r}")
            if not _LOWEST <= port <= _HIGHEST:
                raise BadRequest(f"port {port} is not a port number ({_LOWEST}..{_HIGHEST})")
        if len(set(self.static)) != len(self.static):
            raise BadRequest(f"a static port is asked twice: {sorted(self.static)}")
        if not isinstance(self.dynamic, int) or isinstance(self.dynamic, bool):
            raise BadRequest("ports.dynamic must be an integer")
        if self.dynamic < 0:
            raise BadRequest(f"ports.dynamic cannot be negative ({self.dynamic})")

    def to_dict(self) -> dict[str, Any]:
        return {"static": list(self.static), "dynamic": self.dynamic}

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "ports") -> PortRequest:
        """Read a request, refusing a missing or mistyped field by name."""
        if not isinstance(data, Mapping):
            raise BadRequest(f"{where} must be a map")
        static = data.get("static", [])
        if not isinstance(static, list):
            raise BadRequest(f"{where}.static must be a list of port numbers")
        dynamic = data.get("dynamic", 0)
        if not isinstance(dynamic, int) or isinstance(dynamic, bool):
            raise BadRequest(f"{where}.dynamic must be an integer")
        return cls(static=tuple(static), dynamic=dynamic)


def check_port_range(port_range: tuple[int, int]) -> tuple[int, int]:
    """``port_range`` as ``(first, last)``, refused with :class:`ConfigError` unless
    ``1 <= first <= last <= 65535`` (port 0 is treated as 1: it is not a port)."""
    first, last = port_range
    first = max(first, _LOWEST)
    if not first <= last <= _HIGHEST:
        raise ConfigError(
            f"job.port_range must be two port numbers [first, last] with first <= last,"
            f" got {list(port_range)}"
        )
    return first, last


def reserve_ports(
    request: PortRequest, port_range: tuple[int, int], booked: Set[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ``(static, dynamic)`` ports to book for ``request``, none of them in ``booked``.

    Static ports must lie in ``port_range`` and be free; dynamic ones are the lowest free ports
    of the range. Refused with :class:`PortUnavailable` naming the port or the range.
    """
    first, last = port_range
    problems: list[str] = []
    for port in request.static:
        if not first <= port <= last:
            problems.append(f"port {port} is outside job.port_range {first}-{last}")
        elif port in booked:
            problems.append(f"port {port} is already booked")
    if problems:
        raise PortUnavailable("; ".join(problems))
    unavailable = booked | set(request.static)
    dynamic: list[int] = []
    if request.dynamic:
        for port in range(first, last + 1):
            if port not in unavailable:
                dynamic.append(port)
                if len(dynamic) == request.dynamic:
                    break
        else:
            raise PortUnavailable(
                f"not enough free ports in job.port_range {first}-{last}:"
                f" asked {request.dynamic} dynamic, {len(dynamic)} free"
            )
    return tuple(sorted(request.static)), tuple(dynamic)
