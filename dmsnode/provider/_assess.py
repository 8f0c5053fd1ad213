"""Whether this provider can host a node: the judgement behind a bid, as a pure function.

A provider bids only when everything a commit would check holds now (onboarded, the executors,
privilege, location, free resources, GPUs of the kind asked, ports); otherwise it states the
first reason it cannot, which the orchestrator keeps and the provider logs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import final

from ..deployment import NodeRequest, gpu_fits, location_problem
from ..ensemble import GpuRequest, Location
from ..errors import PortUnavailable
from ..executors import Availability
from ..resources import Gpu, LedgerState, Resources, format_bytes, shortfall
from ..resources._ports import reserve_ports

__all__ = ["Assessment", "Host", "Offer", "assess", "choose_gpus"]


@final
@dataclass(frozen=True, slots=True)
class Offer:
    """What the provider would give the node: its free resources now and the GPUs chosen."""

    free: Resources
    gpus: tuple[Gpu, ...]


@final
@dataclass(frozen=True, slots=True)
class Assessment:
    """An :class:`Offer`, or the reason there is none."""

    offer: Offer | None
    problem: str = ""


@final
@dataclass(frozen=True, slots=True)
class Host:
    """What the assessment needs to know about this provider."""

    executors: Mapping[str, Availability]
    location: Location | None
    allow_privileged: bool
    port_range: tuple[int, int]


def assess(request: NodeRequest, ledger: LedgerState, me: Host) -> Assessment:
    """Can this provider host ``request`` right now? (Nothing is reserved: a commit is.)"""
    if ledger.onboarded is None:
        return Assessment(None, "this node is not onboarded")
    for name in request.executors:
        availability = me.executors.get(name)
        if availability is None:
            return Assessment(None, f"this node has no {name} executor")
        if not availability.available:
            return Assessment(None, f"the {name} executor is unavailable: {availability.reason}")
    if request.privileged and not me.allow_privileged:
        return Assessment(
            None, "the node asks for a privileged container and job.allow_privileged_docker is off"
        )
    problem = location_problem(request.location, me.location)
    if problem is not None:
        return Assessment(None, problem)
    free = ledger.free
    gpus = choose_gpus(request.gpus, free.gpus)
    if gpus is None:
        wanted = ", ".join(_gpu_text(g) for g in request.gpus)
        return Assessment(None, f"no free GPU of the kind asked ({wanted})")
    amount = Resources(
        cpu_cores=request.resources.cpu_cores,
        cpu_hz=request.resources.cpu_hz,
        ram=request.resources.ram,
        disk=request.resources.disk,
        gpus=gpus,
    )
    short = shortfall(amount, ledger.onboarded, free)
    if short is not None:
        return Assessment(None, short)
    try:
        reserve_ports(request.ports, me.port_range, ledger.booked_ports)
    except PortUnavailable as exc:
        return Assessment(None, str(exc))
    return Assessment(Offer(free, gpus))


def choose_gpus(wanted: Sequence[GpuRequest], free: Sequence[Gpu]) -> tuple[Gpu, ...] | None:
    """Distinct free devices, one of the kind of each GPU asked (``None``: none fit).

    The most demanding requests choose first, each taking the smallest device that fits, so a
    small request does not take the device a large one needs."""
    left = sorted(free, key=lambda g: (g.vram, g.key))
    chosen: list[Gpu] = []
    for request in sorted(wanted, key=lambda g: (-g.vram, g.model == "", g.vendor is None)):
        match = next((g for g in left if gpu_fits(request, g)), None)
        if match is None:
            return None
        left.remove(match)
        chosen.append(match)
    return tuple(sorted(chosen, key=lambda g: g.key))


def _gpu_text(request: GpuRequest) -> str:
    text = f"{request.vendor or 'any vendor'} {request.model or 'any model'}"
    return text + (f" with {format_bytes(request.vram)} of VRAM" if request.vram else "")
