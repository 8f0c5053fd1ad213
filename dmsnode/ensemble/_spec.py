"""The records of an ensemble (NuNet's v1 format), as read and checked by
:func:`dmsnode.ensemble.parse`: frozen, typed, amounts in plain units (cores, Hz, bytes, seconds,
milliseconds, bits per second).

Each record's ``to_dict`` writes it back in the file's own format, with exact units (``8GiB``,
``2.4GHz``, ``30s``), so that ``parse(dump(ensemble)) == ensemble``. Mappings are given as
``Mapping`` (read-only to the type checker); the records never change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeAlias, final

from ..resources import PortRequest, Resources, Vendor
from ._units import exact_bytes, exact_duration, exact_hz

__all__ = [
    "ALLOCATION_RECOVERY",
    "ALLOCATION_TYPES",
    "CONTINENTS",
    "ESCALATIONS",
    "EXECUTORS",
    "NODE_RECOVERY",
    "Allocation",
    "AllocationKey",
    "AllocationRecovery",
    "AllocationType",
    "CpuRequest",
    "DiskRequest",
    "DockerExecution",
    "EdgeConstraint",
    "Ensemble",
    "Escalation",
    "Execution",
    "ExecutorName",
    "GpuRequest",
    "HealthCheck",
    "HealthResponse",
    "Location",
    "LocationConstraints",
    "Node",
    "NodePort",
    "NodeRecovery",
    "NullExecution",
    "ProcessExecution",
    "RamRequest",
    "ResourceRequest",
    "Subnet",
]

AllocationType: TypeAlias = Literal["service", "task"]
ExecutorName: TypeAlias = Literal["docker", "process", "null"]
#: What happens to an allocation's siblings on its node when it fails (NuNet's strategies).
AllocationRecovery: TypeAlias = Literal["stay_down", "one_for_one", "one_for_all", "rest_for_one"]
#: What happens when a whole node (its provider) fails.
NodeRecovery: TypeAlias = Literal["stay_down", "restart", "redeploy"]
#: What the orchestrator does when recovery gives up.
Escalation: TypeAlias = Literal["redeploy", "teardown"]

ALLOCATION_TYPES: Final[tuple[AllocationType, ...]] = ("service", "task")
EXECUTORS: Final[tuple[ExecutorName, ...]] = ("docker", "process", "null")
ALLOCATION_RECOVERY: Final[tuple[AllocationRecovery, ...]] = (
    "stay_down",
    "one_for_one",
    "one_for_all",
    "rest_for_one",
)
NODE_RECOVERY: Final[tuple[NodeRecovery, ...]] = ("stay_down", "restart", "redeploy")
ESCALATIONS: Final[tuple[Escalation, ...]] = ("redeploy", "teardown")
CONTINENTS: Final = (
    "Africa",
    "Antarctica",
    "Asia",
    "Europe",
    "North America",
    "Oceania",
    "South America",
)


# --- resources -----------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class CpuRequest:
    """Cores (fractions allowed), the minimum clock per core (Hz, 0: any) and the
    architecture (``""``: any)."""

    cores: float
    clock_speed: int = 0
    architecture: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"cores": self.cores}
        if self.clock_speed:
            data["clock_speed"] = exact_hz(self.clock_speed)
        if self.architecture:
            data["architecture"] = self.architecture
        return data


@final
@dataclass(frozen=True, slots=True)
class RamRequest:
    """RAM size (bytes), and optionally its minimum clock (Hz) and type (``DDR5``)."""

    size: int
    clock_speed: int = 0
    type: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"size": exact_bytes(self.size)}
        if self.clock_speed:
            data["clock_speed"] = exact_hz(self.clock_speed)
        if self.type:
            data["type"] = self.type
        return data


@final
@dataclass(frozen=True, slots=True)
class DiskRequest:
    """Disk size (bytes) and optionally its type (``ssd``)."""

    size: int
    type: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"size": exact_bytes(self.size)}
        if self.type:
            data["type"] = self.type
        return data


@final
@dataclass(frozen=True, slots=True)
class GpuRequest:
    """One whole GPU: its vendor (``None``: any), model (``""``: any; matched as a
    case-insensitive substring) and minimum memory (bytes, 0: any)."""

    vendor: Vendor | None = None
    model: str = ""
    vram: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.vendor:
            data["vendor"] = self.vendor
        if self.model:
            data["model"] = self.model
        if self.vram:
            data["vram"] = exact_bytes(self.vram)
        return data


@final
@dataclass(frozen=True, slots=True)
class ResourceRequest:
    """What one allocation needs (the ``resources`` of an allocation or a template)."""

    cpu: CpuRequest
    ram: RamRequest
    disk: DiskRequest
    gpus: tuple[GpuRequest, ...] = ()

    def amount(self) -> Resources:
        """Cores, clock, RAM and disk as a ledger amount (GPUs are matched to devices
        separately: a request names a kind of GPU, an amount names devices)."""
        return Resources(
            cpu_cores=self.cpu.cores,
            cpu_hz=self.cpu.clock_speed,
            ram=self.ram.size,
            disk=self.disk.size,
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "cpu": self.cpu.to_dict(),
            "ram": self.ram.to_dict(),
            "disk": self.disk.to_dict(),
        }
        if self.gpus:
            data["gpus"] = [gpu.to_dict() for gpu in self.gpus]
        return data


# --- execution -----------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class DockerExecution:
    """A container: the image, and what overrides the image's defaults."""

    image: str
    cmd: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    working_directory: str = ""
    user: str = ""
    privileged: bool = False

    type: Literal["docker"] = field(default="docker", init=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "docker", "image": self.image}
        if self.cmd:
            data["cmd"] = list(self.cmd)
        if self.entrypoint is not None:
            data["entrypoint"] = list(self.entrypoint)
        _add_common(data, self.environment, self.working_directory)
        if self.user:
            data["user"] = self.user
        if self.privileged:
            data["privileged"] = True
        return data


@final
@dataclass(frozen=True, slots=True)
class ProcessExecution:
    """A sandboxed process: its argv (the program and its arguments)."""

    command: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    working_directory: str = ""

    type: Literal["process"] = field(default="process", init=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "process", "command": list(self.command)}
        _add_common(data, self.environment, self.working_directory)
        return data


@final
@dataclass(frozen=True, slots=True)
class NullExecution:
    """Nothing runs (simulations, benchmarks): the execution lasts ``run_for`` seconds (0: a
    task ends at once, a service runs until stopped) and exits with ``exit_code``."""

    run_for: float = 0.0
    exit_code: int = 0

    type: Literal["null"] = field(default="null", init=False)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": "null"}
        if self.run_for:
            data["run_for"] = exact_duration(self.run_for)
        if self.exit_code:
            data["exit_code"] = self.exit_code
        return data


Execution: TypeAlias = DockerExecution | ProcessExecution | NullExecution


def _add_common(data: dict[str, Any], environment: Mapping[str, str], working_dir: str) -> None:
    if environment:
        data["environment"] = [f"{k}={v}" for k, v in environment.items()]
    if working_dir:
        data["working_directory"] = working_dir


# --- health, keys --------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class HealthResponse:
    """What a healthy check answers: the command's output or the HTTP body, whitespace at
    either end ignored."""

    value: str
    type: Literal["string"] = "string"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value}


@final
@dataclass(frozen=True, slots=True)
class HealthCheck:
    """How to tell that a running allocation is healthy: a ``command`` run inside it (``exec``,
    healthy when it exits 0) or an ``http`` GET of ``endpoint`` (healthy on a 2xx status); every
    ``interval`` seconds, each try given ``timeout`` seconds; unhealthy after ``retries``
    failures in a row."""

    type: Literal["command", "http"]
    exec: tuple[str, ...] = ()
    endpoint: str = ""
    response: HealthResponse | None = None
    interval: float = 30.0
    timeout: float = 5.0
    retries: int = 3

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type}
        if self.type == "command":
            data["exec"] = list(self.exec)
        else:
            data["endpoint"] = self.endpoint
        if self.response is not None:
            data["response"] = self.response.to_dict()
        data["interval"] = exact_duration(self.interval)
        data["timeout"] = exact_duration(self.timeout)
        data["retries"] = self.retries
        return data


@final
@dataclass(frozen=True, slots=True)
class AllocationKey:
    """A key file put into the allocation: an SSH public key (authorised for the execution's
    user) or a GPG key (copied to ``dest``)."""

    type: Literal["ssh", "gpg"]
    file: str
    dest: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "file": self.file}
        if self.dest:
            data["dest"] = self.dest
        return data


# --- allocations, nodes --------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Allocation:
    """One workload of the ensemble, placed on one node."""

    name: str
    type: AllocationType
    executor: ExecutorName
    resources: ResourceRequest
    execution: Execution
    dns_name: str
    depends_on: tuple[str, ...] = ()
    healthcheck: HealthCheck | None = None
    failure_recovery: AllocationRecovery = "stay_down"
    provision: tuple[str, ...] = ()
    keys: tuple[AllocationKey, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": self.type,
            "executor": self.executor,
            "resources": self.resources.to_dict(),
            "execution": self.execution.to_dict(),
            "dns_name": self.dns_name,
        }
        if self.depends_on:
            data["depends_on"] = list(self.depends_on)
        if self.healthcheck is not None:
            data["healthcheck"] = self.healthcheck.to_dict()
        data["failure_recovery"] = self.failure_recovery
        if self.provision:
            data["provision"] = list(self.provision)
        if self.keys:
            data["keys"] = [key.to_dict() for key in self.keys]
        return data


@final
@dataclass(frozen=True, slots=True)
class NodePort:
    """A port of one of the node's allocations (``private``) reachable from outside on the
    provider's ``public`` port; ``public`` 0 lets the provider pick a free one."""

    private: int
    allocation: str
    public: int = 0

    @property
    def dynamic(self) -> bool:
        return self.public == 0

    def to_dict(self) -> dict[str, Any]:
        return {"public": self.public, "private": self.private, "allocation": self.allocation}


@final
@dataclass(frozen=True, slots=True)
class Location:
    """A place: a continent, optionally narrowed to a country (ISO 3166 code), a city, an
    autonomous system (ASN) or an ISP."""

    continent: str
    country: str = ""
    city: str = ""
    asn: int = 0
    isp: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"continent": self.continent}
        for key in ("country", "city", "asn", "isp"):
            value = getattr(self, key)
            if value:
                data[key] = value
        return data


@final
@dataclass(frozen=True, slots=True)
class LocationConstraints:
    """Where a node may run: in one of ``accept`` (if any are given) and in none of
    ``reject``."""

    accept: tuple[Location, ...] = ()
    reject: tuple[Location, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.accept:
            data["accept"] = [loc.to_dict() for loc in self.accept]
        if self.reject:
            data["reject"] = [loc.to_dict() for loc in self.reject]
        return data


@final
@dataclass(frozen=True, slots=True)
class Node:
    """A group of allocations that run on one provider, with its ports and constraints.
    ``peer`` pins the node to one provider (a DID); ``redundancy`` asks for that many extra
    copies of the node on other providers."""

    name: str
    allocations: tuple[str, ...]
    ports: tuple[NodePort, ...] = ()
    location: LocationConstraints = field(default_factory=LocationConstraints)
    peer: str = ""
    redundancy: int = 0
    failure_recovery: NodeRecovery = "stay_down"

    def port_request(self) -> PortRequest:
        """The public ports this node asks of a provider's ledger."""
        return PortRequest(
            static=tuple(p.public for p in self.ports if not p.dynamic),
            dynamic=sum(1 for p in self.ports if p.dynamic),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"allocations": list(self.allocations)}
        if self.ports:
            data["ports"] = [port.to_dict() for port in self.ports]
        location = self.location.to_dict()
        if location:
            data["location"] = location
        if self.peer:
            data["peer"] = self.peer
        data["redundancy"] = self.redundancy
        data["failure_recovery"] = self.failure_recovery
        return data


@final
@dataclass(frozen=True, slots=True)
class EdgeConstraint:
    """A network requirement between two nodes: at most ``rtt`` milliseconds of round trip
    and at least ``bw`` bits per second (0: no requirement)."""

    edges: tuple[str, str]
    rtt: int = 0
    bw: int = 0

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"edges": list(self.edges)}
        if self.rtt:
            data["rtt"] = self.rtt
        if self.bw:
            data["bw"] = self.bw
        return data


@final
@dataclass(frozen=True, slots=True)
class Subnet:
    """Whether the ensemble's allocations join a private network with one another."""

    join: bool

    def to_dict(self) -> dict[str, Any]:
        return {"join": self.join}


# --- the ensemble --------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class Ensemble:
    """A whole ensemble: allocations placed on nodes, with the constraints between them.

    ``resources`` holds the named templates as written (each allocation has its own resources
    already resolved); ``scripts`` the provisioning scripts by name.
    """

    allocations: Mapping[str, Allocation]
    nodes: Mapping[str, Node]
    edge_constraints: tuple[EdgeConstraint, ...] = ()
    exclude_peers: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    resources: Mapping[str, ResourceRequest] = field(default_factory=dict)
    scripts: Mapping[str, str] = field(default_factory=dict)
    escalation_strategy: Escalation | None = None
    subnet: Subnet | None = None
    version: str = "V1"

    def node_of(self, allocation: str) -> Node:
        """The node an allocation is placed on (``KeyError`` for an unknown allocation)."""
        for node in self.nodes.values():
            if allocation in node.allocations:
                return node
        raise KeyError(allocation)

    def total(self) -> Resources:
        """Everything the ensemble asks of providers, redundant copies included (cores, RAM,
        disk; the clock is the highest asked)."""
        total = Resources()
        for node in self.nodes.values():
            for name in node.allocations:
                amount = self.allocations[name].resources.amount()
                for _ in range(node.redundancy + 1):
                    total = total + amount
        return total

    def gpu_count(self) -> int:
        """GPUs asked, redundant copies included."""
        return sum(
            len(self.allocations[name].resources.gpus) * (node.redundancy + 1)
            for node in self.nodes.values()
            for name in node.allocations
        )

    def to_dict(self) -> dict[str, Any]:
        """The ensemble in its file format (plain data, ready for YAML or JSON)."""
        data: dict[str, Any] = {"version": self.version}
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        if self.resources:
            data["resources"] = {name: r.to_dict() for name, r in self.resources.items()}
        if self.scripts:
            data["scripts"] = dict(self.scripts)
        data["allocations"] = {name: a.to_dict() for name, a in self.allocations.items()}
        data["nodes"] = {name: n.to_dict() for name, n in self.nodes.items()}
        if self.edge_constraints:
            data["edge_constraints"] = [e.to_dict() for e in self.edge_constraints]
        if self.exclude_peers:
            data["exclude_peers"] = list(self.exclude_peers)
        if self.escalation_strategy is not None:
            data["escalation_strategy"] = self.escalation_strategy
        if self.subnet is not None:
            data["subnet"] = self.subnet.to_dict()
        return data
