"""The records orchestrators and providers exchange: bid requests, bids and refusals.

Each record is frozen, turns into plain data with ``to_dict`` (what travels in an envelope's body)
and is read back with ``from_dict``, which refuses a missing or mistyped field by name with
:class:`~dmsnode.errors.BadRequest`: these arrive from other machines.

A :class:`Bid` is signed by its provider (Ed25519 over the canonical msgpack of its fields), on top
of the envelope's own signature, so that an orchestrator can keep it in a deployment's manifest as
proof of what the provider offered, and show it to anyone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, final

import msgpack

from nuactor import Identity, verify

from ..ensemble import GpuRequest, Location, LocationConstraints
from ..errors import BadRequest
from ..resources import VENDORS, Gpu, PortRequest, Resources

__all__ = [
    "MAX_NODES_PER_REQUEST",
    "Bid",
    "BidRequest",
    "NodeRequest",
    "Refusal",
    "gpu_fits",
    "location_problem",
]

#: A bid request asks for at most this many nodes (redundant copies included).
MAX_NODES_PER_REQUEST: Final = 256
_MAX_TEXT: Final = 512
_MAX_RTTS: Final = 64


@final
@dataclass(frozen=True, slots=True)
class NodeRequest:
    """What one ensemble node asks of a provider: the sum of its allocations' resources, the
    kinds of GPU, its public ports, where it may run and which executors it needs.

    ``node`` is the node's name, with ``#n`` for its n-th redundant copy (``web#1``)."""

    node: str
    executors: tuple[str, ...]
    resources: Resources
    gpus: tuple[GpuRequest, ...] = ()
    ports: PortRequest = field(default_factory=PortRequest)
    location: LocationConstraints = field(default_factory=LocationConstraints)
    privileged: bool = False
    peer: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "node": self.node,
            "executors": list(self.executors),
            "resources": self.resources.to_dict(),
        }
        if self.gpus:
            data["gpus"] = [gpu.to_dict() for gpu in self.gpus]
        if self.ports != PortRequest():
            data["ports"] = self.ports.to_dict()
        location = self.location.to_dict()
        if location:
            data["location"] = location
        if self.privileged:
            data["privileged"] = True
        if self.peer:
            data["peer"] = self.peer
        return data

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "node") -> NodeRequest:
        data = _map(data, where)
        executors = _list(data.get("executors"), f"{where}.executors")
        gpus = _list(data.get("gpus", []), f"{where}.gpus")
        return cls(
            node=_text(data.get("node"), f"{where}.node"),
            executors=tuple(_text(e, f"{where}.executors[{i}]") for i, e in enumerate(executors)),
            resources=_resources(data.get("resources"), f"{where}.resources"),
            gpus=tuple(_gpu_request(g, f"{where}.gpus[{i}]") for i, g in enumerate(gpus)),
            ports=PortRequest.from_dict(data.get("ports", {}), where=f"{where}.ports"),
            location=_constraints(data.get("location", {}), f"{where}.location"),
            privileged=_bool(data.get("privileged", False), f"{where}.privileged"),
            peer=_text(data.get("peer", ""), f"{where}.peer", empty=True),
        )


@final
@dataclass(frozen=True, slots=True)
class BidRequest:
    """An orchestrator's call for bids on some nodes of one deployment, open until ``expires``
    (Unix time); providers in ``exclude`` must not bid."""

    deployment: str
    nonce: str
    orchestrator: str
    nodes: tuple[NodeRequest, ...]
    expires: float
    exclude: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "nonce": self.nonce,
            "orchestrator": self.orchestrator,
            "nodes": [node.to_dict() for node in self.nodes],
            "expires": self.expires,
            "exclude": list(self.exclude),
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "request") -> BidRequest:
        data = _map(data, where)
        nodes = _list(data.get("nodes"), f"{where}.nodes")
        if not nodes:
            raise BadRequest(f"{where}.nodes is empty: a bid request asks for at least one node")
        if len(nodes) > MAX_NODES_PER_REQUEST:
            raise BadRequest(
                f"{where}.nodes asks for {len(nodes)} nodes (at most {MAX_NODES_PER_REQUEST})"
            )
        exclude = _list(data.get("exclude", []), f"{where}.exclude")
        return cls(
            deployment=_text(data.get("deployment"), f"{where}.deployment"),
            nonce=_text(data.get("nonce"), f"{where}.nonce"),
            orchestrator=_text(data.get("orchestrator"), f"{where}.orchestrator"),
            nodes=tuple(
                NodeRequest.from_dict(n, where=f"{where}.nodes[{i}]") for i, n in enumerate(nodes)
            ),
            expires=_number(data.get("expires"), f"{where}.expires"),
            exclude=tuple(_text(d, f"{where}.exclude[{i}]") for i, d in enumerate(exclude)),
        )


@final
@dataclass(frozen=True, slots=True)
class Bid:
    """A provider's offer to host one node of a deployment until ``expires`` (Unix time).

    ``free`` is what the provider had free when it bid (the orchestrator scores fit with it);
    ``gpus`` the keys of the devices it would give; ``rtt_ms`` round trips it measured to other
    peers (for edge constraints). ``signature`` is the provider's, over everything else."""

    deployment: str
    nonce: str
    node: str
    provider: str
    free: Resources
    expires: float
    location: Location | None = None
    gpus: tuple[str, ...] = ()
    rtt_ms: Mapping[str, float] = field(default_factory=dict)
    signature: bytes = b""

    def payload(self) -> bytes:
        """The bytes the signature covers: the canonical msgpack of every other field."""
        data = self.to_dict()
        del data["signature"]
        # Numbers that may arrive as either int or float are packed as floats, so a bid read
        # back from the wire packs to the same bytes as the one signed.
        data["free"]["cpu_cores"] = float(self.free.cpu_cores)
        data["expires"] = float(self.expires)
        data["rtt_ms"] = {k: float(v) for k, v in self.rtt_ms.items()}
        packed: bytes = msgpack.packb(_canonical(data), use_bin_type=True)
        return packed

    def sign(self, identity: Identity) -> Bid:
        if identity.did != self.provider:
            raise ValueError("a bid is signed by its provider")
        return replace(self, signature=identity.sign(self.payload()))

    def verify(self) -> bool:
        """Whether the signature is the provider's over this bid."""
        try:
            return verify(self.provider, self.payload(), self.signature)
        except Exception:  # a DID that is no did:key: not a valid bid
            return False

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "nonce": self.nonce,
            "node": self.node,
            "provider": self.provider,
            "free": self.free.to_dict(),
            "expires": self.expires,
            "location": None if self.location is None else self.location.to_dict(),
            "gpus": list(self.gpus),
            "rtt_ms": dict(self.rtt_ms),
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "bid") -> Bid:
        data = _map(data, where)
        location = data.get("location")
        gpus = _list(data.get("gpus", []), f"{where}.gpus")
        rtts = _map(data.get("rtt_ms", {}), f"{where}.rtt_ms")
        if len(rtts) > _MAX_RTTS:
            raise BadRequest(f"{where}.rtt_ms lists {len(rtts)} peers (at most {_MAX_RTTS})")
        signature = data.get("signature")
        if not isinstance(signature, bytes):
            raise BadRequest(f"{where}.signature must be bytes")
        return cls(
            deployment=_text(data.get("deployment"), f"{where}.deployment"),
            nonce=_text(data.get("nonce"), f"{where}.nonce"),
            node=_text(data.get("node"), f"{where}.node"),
            provider=_text(data.get("provider"), f"{where}.provider"),
            free=_resources(data.get("free"), f"{where}.free"),
            expires=_number(data.get("expires"), f"{where}.expires"),
            location=None if location is None else _location(location, f"{where}.location"),
            gpus=tuple(_text(g, f"{where}.gpus[{i}]") for i, g in enumerate(gpus)),
            rtt_ms={
                _text(k, f"{where}.rtt_ms"): _number(v, f"{where}.rtt_ms[{k}]")
                for k, v in rtts.items()
            },
            signature=signature,
        )


@final
@dataclass(frozen=True, slots=True)
class Refusal:
    """A provider's reason for not bidding on one node (kept by the orchestrator)."""

    node: str
    provider: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "provider": self.provider, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "refusal") -> Refusal:
        data = _map(data, where)
        return cls(
            node=_text(data.get("node"), f"{where}.node"),
            provider=_text(data.get("provider"), f"{where}.provider"),
            reason=_text(data.get("reason"), f"{where}.reason", limit=4096),
        )


# --- matching ------------------------------------------------------------------------------------


def gpu_fits(request: GpuRequest, gpu: Gpu) -> bool:
    """Whether the device ``gpu`` is of the kind ``request`` asks for."""
    if request.vendor is not None and request.vendor != gpu.vendor:
        return False
    if request.model and request.model.lower() not in gpu.model.lower():
        return False
    return gpu.vram >= request.vram


def location_problem(constraints: LocationConstraints, place: Location | None) -> str | None:
    """Why a provider at ``place`` may not host a node with these constraints (``None``: it may)."""
    if place is None:
        if constraints.accept:
            return "the node must run in a given place and this provider states no location"
        return None
    for rejected in constraints.reject:
        if _within(place, rejected):
            return f"the provider's location {_describe(place)} is rejected ({_describe(rejected)})"
    if constraints.accept and not any(_within(place, a) for a in constraints.accept):
        wanted = " or ".join(_describe(a) for a in constraints.accept)
        return f"the provider's location {_describe(place)} is not one accepted ({wanted})"
    return None


def _within(place: Location, area: Location) -> bool:
    """Whether ``place`` lies in ``area`` (every field ``area`` sets matches)."""
    if place.continent != area.continent:
        return False
    if area.country and place.country.upper() != area.country.upper():
        return False
    if area.city and place.city.lower() != area.city.lower():
        return False
    if area.asn and place.asn != area.asn:
        return False
    return not (area.isp and place.isp.lower() != area.isp.lower())


def _describe(place: Location) -> str:
    parts = [place.continent, place.country, place.city]
    text = "/".join(p for p in parts if p)
    if place.asn:
        text += f" AS{place.asn}"
    if place.isp:
        text += f" ({place.isp})"
    return text


# --- reading plain data --------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """Maps with sorted keys, all the way down, so the same bid always packs the same."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def _map(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadRequest(f"{where} must be a map, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise BadRequest(f"{where} must be a list, got {type(value).__name__}")
    return list(value)


def _text(value: Any, where: str, *, empty: bool = False, limit: int = _MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a string, got {type(value).__name__}")
    if not value and not empty:
        raise BadRequest(f"{where} is empty")
    if len(value) > limit:
        raise BadRequest(f"{where} is {len(value)} characters long (at most {limit})")
    return value


def _number(value: Any, where: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadRequest(f"{where} must be a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise BadRequest(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise BadRequest(f"{where} must be true or false, got {type(value).__name__}")
    return value


def _resources(value: Any, where: str) -> Resources:
    resources = Resources.from_dict(value, where=where)
    if not math.isfinite(resources.cpu_cores):
        raise BadRequest(f"{where}.cpu_cores must be a finite number")
    return resources


def _gpu_request(value: Any, where: str) -> GpuRequest:
    data = _map(value, where)
    vendor = data.get("vendor")
    if vendor is not None and vendor not in VENDORS:
        raise BadRequest(f"{where}.vendor must be one of {', '.join(VENDORS)}, got {vendor!r}")
    vram = data.get("vram", 0)
    if not isinstance(vram, int) or isinstance(vram, bool) or vram < 0:
        raise BadRequest(f"{where}.vram must be a number of bytes")
    return GpuRequest(
        vendor=vendor,
        model=_text(data.get("model", ""), f"{where}.model", empty=True),
        vram=vram,
    )


def _location(value: Any, where: str) -> Location:
    data = _map(value, where)
    asn = data.get("asn", 0)
    if not isinstance(asn, int) or isinstance(asn, bool) or asn < 0:
        raise BadRequest(f"{where}.asn must be a number")
    return Location(
        continent=_text(data.get("continent"), f"{where}.continent"),
        country=_text(data.get("country", ""), f"{where}.country", empty=True),
        city=_text(data.get("city", ""), f"{where}.city", empty=True),
        asn=asn,
        isp=_text(data.get("isp", ""), f"{where}.isp", empty=True),
    )


def _constraints(value: Any, where: str) -> LocationConstraints:
    data = _map(value, where)
    accept = _list(data.get("accept", []), f"{where}.accept")
    reject = _list(data.get("reject", []), f"{where}.reject")
    return LocationConstraints(
        accept=tuple(_location(a, f"{where}.accept[{i}]") for i, a in enumerate(accept)),
        reject=tuple(_location(r, f"{where}.reject[{i}]") for i, r in enumerate(reject)),
    )
