"""From plain data (read from YAML or JSON) to the records of :mod:`._spec`, field by field.

Every field is checked on its own: its type, its unit, its range, the keys allowed next to it
(an unknown key is named, with the nearest known key as a hint). A field that is wrong is
reported at its path and replaced by a placeholder, so that reading goes on and the whole file
is reported at once; the records built from placeholders are only used by the cross-field
checks of :mod:`._validate`, never returned. Resource templates are resolved here.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final, TypeVar, cast, final
from urllib.parse import urlsplit

from nuactor import public_key_from_did
from nuactor.errors import InvalidDid

from ..errors import BadRequest
from ..resources import VENDORS, Vendor
from ._errors import Path, Problems
from ._spec import (
    ALLOCATION_RECOVERY,
    ALLOCATION_TYPES,
    CONTINENTS,
    ESCALATIONS,
    EXECUTORS,
    NODE_RECOVERY,
    Allocation,
    AllocationKey,
    CpuRequest,
    DiskRequest,
    DockerExecution,
    EdgeConstraint,
    Ensemble,
    Execution,
    GpuRequest,
    HealthCheck,
    HealthResponse,
    Location,
    LocationConstraints,
    Node,
    NodePort,
    NullExecution,
    ProcessExecution,
    RamRequest,
    ResourceRequest,
    Subnet,
)
from ._units import (
    parse_bandwidth,
    parse_clock,
    parse_duration,
    parse_rtt,
    parse_size,
)

__all__ = ["read_ensemble"]

T = TypeVar("T")

_ROOT_KEYS: Final = (
    "version",
    "metadata",
    "resources",
    "scripts",
    "allocations",
    "nodes",
    "edge_constraints",
    "exclude_peers",
    "escalation_strategy",
    "subnet",
)
_ALLOCATION_KEYS: Final = (
    "type",
    "executor",
    "resources",
    "execution",
    "dns_name",
    "depends_on",
    "healthcheck",
    "failure_recovery",
    "provision",
    "keys",
)
_RESOURCE_KEYS: Final = ("name", "cpu", "ram", "disk", "gpus")
_CPU_KEYS: Final = ("cores", "clock_speed", "architecture")
_RAM_KEYS: Final = ("size", "clock_speed", "type")
_DISK_KEYS: Final = ("size", "type")
_GPU_KEYS: Final = ("vendor", "model", "vram")
_EXECUTION_KEYS: Final = {
    "docker": (
        "type",
        "image",
        "cmd",
        "entrypoint",
        "environment",
        "working_directory",
        "user",
        "privileged",
    ),
    "process": ("type", "command", "environment", "working_directory"),
    "null": ("type", "run_for", "exit_code"),
}
_HEALTH_KEYS: Final = ("type", "exec", "endpoint", "response", "interval", "timeout", "retries")
_RESPONSE_KEYS: Final = ("type", "value")
_KEY_KEYS: Final = ("type", "file", "dest")
_NODE_KEYS: Final = ("allocations", "ports", "location", "peer", "redundancy", "failure_recovery")
_PORT_KEYS: Final = ("public", "private", "allocation")
_LOCATION_KEYS: Final = ("accept", "reject")
_PLACE_KEYS: Final = ("continent", "country", "city", "asn", "isp")
_EDGE_KEYS: Final = ("edges", "rtt", "bw")

#: Other spellings people write (older NuNet files, Docker Compose, habit), and what is meant.
_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "env": ("environment",),
    "working_dir": ("working_directory",),
    "workdir": ("working_directory",),
    "args": ("cmd", "command"),
    "cmd": ("command",),
    "command": ("cmd",),
    "dnsname": ("dns_name",),
    "health_check": ("healthcheck",),
    "clockspeed": ("clock_speed",),
    "edges": ("edge_constraints",),
    "region": ("continent",),
    "gpu": ("gpus",),
    "memory": ("vram", "ram"),
    "dependencies": ("depends_on",),
    "depends-on": ("depends_on",),
    "replicas": ("redundancy",),
}
#: Keys of NuNet's format that dmsnode does not implement, and what to do instead.
_UNSUPPORTED: Final[Mapping[str, str]] = {
    "supervisor": "use failure_recovery on allocations and nodes instead",
    "volumes": "dmsnode has no volumes yet",
    "contracts": "dmsnode has no contracts",
    "keys": "give keys per allocation (allocations.<name>.keys: [{type, file, dest}])",
}

_ALLOCATION_NAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}")
_COUNTRY: Final = re.compile(r"[A-Za-z]{2}")
_MAX_CORES: Final = 1_000_000
_MAX_REDUNDANCY: Final = 100
_MAX_RETRIES: Final = 100
_LOWEST_PUBLIC_PORT: Final = 1025

#: Stands in for a resources request that could not be read.
_NO_RESOURCES: Final = ResourceRequest(CpuRequest(0.0), RamRequest(0), DiskRequest(0))


def read_ensemble(data: Any, problems: Problems) -> Ensemble | None:
    """The ensemble in ``data``, with every problem recorded in ``problems`` (the result then
    holds placeholders where fields were wrong); ``None`` if ``data`` is not even a mapping."""
    return _Reader(problems).ensemble(data)


@final
class _Reader:
    """Reads one ensemble, field by field, into ``problems``; knows the templates read so far."""

    def __init__(self, problems: Problems) -> None:
        self.problems = problems
        self.templates: dict[str, ResourceRequest] = {}
        self.template_data: dict[str, Mapping[str, Any]] = {}
        self.declared_templates: set[str] = set()

    def error(self, path: Path, message: str) -> None:
        self.problems.add(path, message)

    # --- the whole -------------------------------------------------------------------------------

    def ensemble(self, data: Any) -> Ensemble | None:
        if not isinstance(data, dict):
            self.error(
                (),
                "an ensemble file must be a mapping with 'allocations' and 'nodes' at the top,"
                f" got {_kind(data)}",
            )
            return None
        self.keys(data, (), _ROOT_KEYS)
        version = self.version(data)
        metadata = self.metadata(data)
        scripts = self.named(data, "scripts", self.script) or {}
        self.read_templates(data)
        allocations = self.named(data, "allocations", self.allocation, required=True) or {}
        self.check_allocation_names(allocations)
        nodes = self.named(data, "nodes", self.node, required=True) or {}
        edges = self.items(data, "edge_constraints", (), self.edge)
        exclude = self.items(data, "exclude_peers", (), self.peer_did)
        escalation = self.choice(data, "escalation_strategy", (), ESCALATIONS, default=None)
        subnet = self.subnet(data)
        return Ensemble(
            allocations=allocations,
            nodes=nodes,
            edge_constraints=tuple(edges),
            exclude_peers=tuple(exclude),
            metadata=metadata,
            resources=dict(self.templates),
            scripts=scripts,
            escalation_strategy=escalation,
            subnet=subnet,
            version=version,
        )

    def version(self, data: Mapping[str, Any]) -> str:
        value = data.get("version")
        if value is None:
            return "V1"
        if not isinstance(value, str) or value.strip().lower() not in ("v1", "ensemblev1"):
            self.error(("version",), f"only version V1 is supported, got {_shown(value)}")
        return "V1"

    def metadata(self, data: Mapping[str, Any]) -> dict[str, str]:
        raw = self.mapping(data.get("metadata"), ("metadata",), "metadata", optional=True)
        result: dict[str, str] = {}
        for key, value in (raw or {}).items():
            path: Path = ("metadata", key)
            if not key.strip():
                self.error(path, "a metadata key cannot be empty")
            elif isinstance(value, bool):
                result[key] = "true" if value else "false"
            elif isinstance(value, str | int | float):
                result[key] = value if isinstance(value, str) else repr(value)
            else:
                self.error(path, f"metadata values are text or numbers, got {_kind(value)}")
        return result

    def script(self, value: Any, path: Path) -> str:
        if not isinstance(value, str) or not value.strip():
            self.error(path, f"a script is its text (a shell script), got {_shown(value)}")
            return ""
        return value

    def subnet(self, data: Mapping[str, Any]) -> Subnet | None:
        raw = self.mapping(data.get("subnet"), ("subnet",), "subnet", optional=True)
        if raw is None:
            return None
        self.keys(raw, ("subnet",), ("join",))
        join = self.boolean(raw, "join", ("subnet",), default=None)
        if join is None:
            self.error(("subnet", "join"), "is missing: true to join the ensemble's subnet")
            return None
        return Subnet(join=join)

    # --- resources -------------------------------------------------------------------------------

    def read_templates(self, data: Mapping[str, Any]) -> None:
        raw = self.mapping(data.get("resources"), ("resources",), "resources", optional=True)
        self.declared_templates = set(raw or {})
        for name, value in (raw or {}).items():
            path: Path = ("resources", name)
            if not _NAME.fullmatch(name):
                self.error(path, _bad_name("a template", name))
                continue
            template = self.mapping(value, path, "a resource template")
            if template is None:
                continue
            own = template.get("name", name)
            if own != name:
                self.error((*path, "name"), f"must be the template's key ({name!r}) if given")
            request = self.resources(template, path)
            if not self.problems.touched(path):
                self.templates[name] = request
                self.template_data[name] = template

    def allocation_resources(self, value: Any, path: Path) -> ResourceRequest:
        """An allocation's resources: a template's name, or a mapping (with ``name``, a
        template that the other keys override)."""
        if isinstance(value, str):
            value = {"name": value}
        data = self.mapping(value, path, "resources (a mapping, or a template's name)")
        if data is None:
            return _NO_RESOURCES
        name = data.get("name")
        if name is None:
            return self.resources(data, path)
        if not isinstance(name, str) or name not in self.template_data:
            if isinstance(name, str) and name in self.declared_templates:
                return _NO_RESOURCES  # the template is wrong, and reported where it is defined
            where = path if set(data) == {"name"} else (*path, "name")
            self.error(where, self.unknown_template(name))
            return _NO_RESOURCES
        merged = {**self.template_data[name], **data}
        return self.resources(merged, path)

    def unknown_template(self, name: Any) -> str:
        known = sorted(self.template_data)
        if not isinstance(name, str):
            return f"a template is named by text, got {_shown(name)}"
        if not known:
            return f"no resource template named {name!r}: define it under the top-level 'resources'"
        return f"no resource template named {name!r}{_hint(name, known)} (templates: {', '.join(known)})"

    def resources(self, data: Mapping[str, Any], path: Path) -> ResourceRequest:
        self.keys(data, path, _RESOURCE_KEYS)
        cpu = self.section(data, "cpu", path, self.cpu, "the CPU: cores (e.g. cpu: {cores: 1})")
        ram = self.section(data, "ram", path, self.ram, "the RAM: size (e.g. ram: {size: 1GiB})")
        disk = self.section(
            data, "disk", path, self.disk, "the disk: size (e.g. disk: {size: 1GiB})"
        )
        gpus = self.items(data, "gpus", path, self.gpu)
        return ResourceRequest(
            cpu=cpu or CpuRequest(0.0),
            ram=ram or RamRequest(0),
            disk=disk or DiskRequest(0),
            gpus=tuple(gpus),
        )

    def cpu(self, data: Mapping[str, Any], path: Path) -> CpuRequest:
        self.keys(data, path, _CPU_KEYS)
        cores = data.get("cores")
        where = (*path, "cores")
        value = 0.0
        if cores is None:
            self.error(where, "is missing: how many cores (1, 2, 0.5)")
        elif isinstance(cores, bool) or not isinstance(cores, int | float):
            self.error(where, f"must be a number of cores (1, 2, 0.5), got {_shown(cores)}")
        elif (isinstance(cores, float) and not math.isfinite(cores)) or not 0 < cores <= _MAX_CORES:
            self.error(where, f"must be more than 0 and at most {_MAX_CORES}, got {cores!r}")
        else:
            value = float(cores)
        return CpuRequest(
            cores=value,
            clock_speed=self.unit(data, "clock_speed", path, parse_clock, 0),
            architecture=self.text(data, "architecture", path, ""),
        )

    def ram(self, data: Mapping[str, Any], path: Path) -> RamRequest:
        self.keys(data, path, _RAM_KEYS)
        return RamRequest(
            size=self.size(data, path, "the RAM size (1GiB, 512MiB; a bare number is GiB)"),
            clock_speed=self.unit(data, "clock_speed", path, parse_clock, 0),
            type=self.text(data, "type", path, ""),
        )

    def disk(self, data: Mapping[str, Any], path: Path) -> DiskRequest:
        self.keys(data, path, _DISK_KEYS)
        return DiskRequest(
            size=self.size(data, path, "the disk size (10GiB; a bare number is GiB)", zero=True),
            type=self.text(data, "type", path, ""),
        )

    def size(self, data: Mapping[str, Any], path: Path, what: str, *, zero: bool = False) -> int:
        if data.get("size") is None:
            self.error((*path, "size"), f"is missing: {what}")
            return 0
        size = self.unit(data, "size", path, parse_size, 0)
        if size == 0 and not zero and not self.problems.touched((*path, "size")):
            self.error((*path, "size"), "must be more than 0")
        return size

    def gpu(self, value: Any, path: Path) -> GpuRequest:
        data = self.mapping(value, path, "a GPU (vendor, model, vram)")
        if data is None:
            return GpuRequest()
        self.keys(data, path, _GPU_KEYS)
        vendor: Vendor | None = None
        raw = data.get("vendor")
        if raw is not None:
            lowered = raw.strip().lower() if isinstance(raw, str) else None
            if lowered in VENDORS:
                vendor = cast(Vendor, lowered)
            if vendor is None:
                self.error(
                    (*path, "vendor"),
                    f"unknown GPU vendor {_shown(raw)} (known: {', '.join(VENDORS)})",
                )
        return GpuRequest(
            vendor=vendor,
            model=self.text(data, "model", path, ""),
            vram=self.unit(data, "vram", path, parse_size, 0),
        )

    # --- allocations -----------------------------------------------------------------------------

    def check_allocation_names(self, allocations: Mapping[str, Allocation]) -> None:
        seen: dict[str, str] = {}
        for name in allocations:
            other = seen.setdefault(name.lower(), name)
            if other != name:
                self.error(
                    ("allocations", name),
                    f"{name!r} and {other!r} differ only in case (names are DNS names)",
                )

    def allocation(self, value: Any, path: Path) -> Allocation:
        name = str(path[-1])
        if not _ALLOCATION_NAME.fullmatch(name):
            self.error(
                path,
                f"{name!r} is not a valid allocation name: a DNS label (letters, digits and"
                " '-', at most 63, not starting or ending with '-')",
            )
        data = self.mapping(value, path, "an allocation")
        if data is None:  # a placeholder keeps the name known to the cross-field checks
            return Allocation(name, "task", "null", _NO_RESOURCES, NullExecution(), name)
        self.keys(data, path, _ALLOCATION_KEYS)
        kind = self.choice(data, "type", path, ALLOCATION_TYPES, default=None)
        if kind is None and data.get("type") is None:
            self.error((*path, "type"), "is missing: service (runs until stopped) or task")
        executor = self.executor(data, path)
        resources = (
            self.allocation_resources(data["resources"], (*path, "resources"))
            if data.get("resources") is not None
            else self.missing((*path, "resources"), "what the allocation needs", _NO_RESOURCES)
        )
        execution = self.execution(data.get("execution"), (*path, "execution"), executor)
        dns_name = self.dns_name(data, path, name)
        depends_on = self.names(data, "depends_on", path, "an allocation")
        for i, dependency in enumerate(depends_on):
            if dependency == name:
                self.error((*path, "depends_on", i), "an allocation cannot depend on itself")
        health = data.get("healthcheck")
        return Allocation(
            name=name,
            type=kind or "task",
            executor=executor or "null",
            resources=resources,
            execution=execution,
            dns_name=dns_name,
            depends_on=depends_on,
            healthcheck=None
            if health is None
            else self.healthcheck(health, (*path, "healthcheck")),
            failure_recovery=self.choice(
                data, "failure_recovery", path, ALLOCATION_RECOVERY, default="stay_down"
            ),
            provision=self.names(data, "provision", path, "a script", unique=False),
            keys=tuple(self.items(data, "keys", path, self.key)),
        )

    def executor(self, data: Mapping[str, Any], path: Path) -> Any:
        if "executor" in data and data["executor"] is None:
            self.error(
                (*path, "executor"),
                'write executor: "null" (quoted): unquoted, YAML reads null as nothing',
            )
            return None
        if data.get("executor") is None:
            self.error((*path, "executor"), f"is missing: one of {', '.join(EXECUTORS)}")
            return None
        if data["executor"] == "firecracker":
            self.error(
                (*path, "executor"),
                "firecracker is not supported by dmsnode (it runs docker, process and null)",
            )
            return None
        return self.choice(data, "executor", path, EXECUTORS, default=None)

    def execution(self, value: Any, path: Path, executor: str | None) -> Execution:
        if value is None:
            if executor == "null":
                return NullExecution()
            if executor is not None:
                self.error(path, f"is missing: what the {executor} executor runs")
            return NullExecution()
        data = self.mapping(value, path, "an execution")
        if data is None or executor is None:
            return NullExecution()
        self.keys(data, path, _EXECUTION_KEYS[executor])
        if "type" in data:
            kind = data["type"]
            if kind is None and executor == "null":
                pass  # `type: null` unquoted: YAML's null, and the null executor meant
            elif kind != executor:
                self.error(
                    (*path, "type"),
                    f"must be the allocation's executor ({executor}), got {_shown(kind)}",
                )
        if executor == "docker":
            return self.docker(data, path)
        if executor == "process":
            return self.process(data, path)
        return NullExecution(
            run_for=self.unit(data, "run_for", path, parse_duration, 0.0),
            exit_code=self.integer(data, "exit_code", path, 0, low=0, high=255),
        )

    def docker(self, data: Mapping[str, Any], path: Path) -> DockerExecution:
        image = data.get("image")
        if image is None:
            self.error((*path, "image"), "is missing: the container image (busybox:1.36)")
            image = ""
        elif not isinstance(image, str) or not _IMAGE.fullmatch(image):
            self.error((*path, "image"), f"not a container image reference: {_shown(image)}")
            image = ""
        working_dir = self.text(data, "working_directory", path, "")
        if working_dir and not working_dir.startswith("/"):
            self.error((*path, "working_directory"), "must be an absolute path in the container")
        entrypoint = (
            self.argv(data, "entrypoint", path, allow_empty=True)
            if data.get("entrypoint") is not None
            else None
        )
        return DockerExecution(
            image=image,
            cmd=self.argv(data, "cmd", path, allow_empty=True),
            entrypoint=entrypoint,
            environment=self.environment(data, path),
            working_directory=working_dir,
            user=self.text(data, "user", path, ""),
            privileged=bool(self.boolean(data, "privileged", path, default=False)),
        )

    def process(self, data: Mapping[str, Any], path: Path) -> ProcessExecution:
        if data.get("command") is None:
            self.error(
                (*path, "command"),
                'is missing: the program and its arguments (["/bin/sh", "-c", "echo hello"])',
            )
            command: tuple[str, ...] = ()
        else:
            command = self.argv(data, "command", path, allow_empty=False)
        return ProcessExecution(
            command=command,
            environment=self.environment(data, path),
            working_directory=self.text(data, "working_directory", path, ""),
        )

    def argv(
        self, data: Mapping[str, Any], key: str, path: Path, *, allow_empty: bool
    ) -> tuple[str, ...]:
        value = data.get(key)
        where = (*path, key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(
                where,
                f'must be a list of arguments (["/bin/sh", "-c", "echo hello"]), got {_kind(value)}',
            )
            return ()
        if not value and not allow_empty:
            self.error(where, "cannot be empty: name at least the program")
        result: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                result.append(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                result.append(str(item))
            else:
                self.error((*where, i), f"an argument must be text, got {_shown(item)}; quote it")
        return tuple(result)

    def environment(self, data: Mapping[str, Any], path: Path) -> dict[str, str]:
        """``["KEY=value", ...]`` (NuNet's form) or ``{KEY: value}``."""
        value = data.get("environment")
        where = (*path, "environment")
        result: dict[str, str] = {}
        if value is None:
            return result
        if isinstance(value, dict):
            pairs = [((*where, k), k, v) for k, v in value.items()]
        elif isinstance(value, list):
            pairs = []
            for i, item in enumerate(value):
                if not isinstance(item, str) or "=" not in item:
                    self.error((*where, i), f"must be KEY=value, got {_shown(item)}")
                    continue
                k, _, v = item.partition("=")
                pairs.append(((*where, i), k, v))
        else:
            self.error(where, f"must be a list of KEY=value or a mapping, got {_kind(value)}")
            return result
        for at, k, v in pairs:
            if not _ENV_NAME.fullmatch(k):
                self.error(at, f"{k!r} is not a variable name (letters, digits, _)")
            elif k in result:
                self.error(at, f"the variable {k} is set twice")
            elif isinstance(v, bool):
                result[k] = "true" if v else "false"
            elif isinstance(v, str | int | float):
                result[k] = v if isinstance(v, str) else repr(v)
            else:
                self.error(at, f"a value must be text or a number, got {_shown(v)}")
        return result

    def dns_name(self, data: Mapping[str, Any], path: Path, default: str) -> str:
        value = data.get("dns_name")
        if value is None:
            return default
        if not isinstance(value, str) or not _is_hostname(value):
            self.error(
                (*path, "dns_name"),
                f"not a DNS name: {_shown(value)} (labels of letters, digits and '-', joined by '.')",
            )
            return default
        return value

    def healthcheck(self, value: Any, path: Path) -> HealthCheck | None:
        data = self.mapping(value, path, "a health check (type: command or http)")
        if data is None:
            return None
        self.keys(data, path, _HEALTH_KEYS)
        kind = self.choice(data, "type", path, ("command", "http"), default=None)
        if kind is None and data.get("type") is None:
            self.error((*path, "type"), "is missing: command (exec) or http (endpoint)")
        exec_: tuple[str, ...] = ()
        endpoint = ""
        if kind == "command":
            if data.get("endpoint") is not None:
                self.error((*path, "endpoint"), "is for http health checks; give exec instead")
            if data.get("exec") is None:
                self.error((*path, "exec"), 'is missing: the command to run (["pg_isready"])')
            else:
                exec_ = self.argv(data, "exec", path, allow_empty=False)
        elif kind == "http":
            if data.get("exec") is not None:
                self.error((*path, "exec"), "is for command health checks; give endpoint instead")
            endpoint = self.text(data, "endpoint", path, "")
            if not endpoint and not self.problems.touched((*path, "endpoint")):
                self.error((*path, "endpoint"), "is missing: the URL to GET (http://...)")
            elif endpoint and not _is_http_url(endpoint):
                self.error(
                    (*path, "endpoint"), f"must be an http:// or https:// URL, got {endpoint!r}"
                )
        interval = self.unit(data, "interval", path, parse_duration, 30.0)
        timeout = self.unit(data, "timeout", path, parse_duration, 5.0)
        for key, seconds in (("interval", interval), ("timeout", timeout)):
            if seconds <= 0 and not self.problems.touched((*path, key)):
                self.error((*path, key), "must be longer than 0 (at least 1ms)")
        if timeout > interval and not self.problems.touched_any(
            [(*path, "interval"), (*path, "timeout")]
        ):
            self.error(
                (*path, "timeout"),
                f"must not be longer than the interval ({timeout:g}s > {interval:g}s)",
            )
        return HealthCheck(
            type=kind or "command",
            exec=exec_,
            endpoint=endpoint,
            response=self.response(data.get("response"), (*path, "response")),
            interval=interval,
            timeout=timeout,
            retries=self.integer(data, "retries", path, 3, low=1, high=_MAX_RETRIES),
        )

    def response(self, value: Any, path: Path) -> HealthResponse | None:
        if value is None:
            return None
        data = self.mapping(value, path, "an expected response (type: string, value)")
        if data is None:
            return None
        self.keys(data, path, _RESPONSE_KEYS)
        self.choice(data, "type", path, ("string",), default="string")
        if data.get("value") is None:
            self.error((*path, "value"), "is missing: the output a healthy check gives")
        return HealthResponse(value=self.text(data, "value", path, "", allow_empty=True))

    def key(self, value: Any, path: Path) -> AllocationKey | None:
        data = self.mapping(value, path, "a key (type, file, dest)")
        if data is None:
            return None
        self.keys(data, path, _KEY_KEYS)
        kind = self.choice(data, "type", path, ("ssh", "gpg"), default=None)
        if kind is None and data.get("type") is None:
            self.error((*path, "type"), "is missing: ssh or gpg")
        file = self.text(data, "file", path, "")
        if not file and not self.problems.touched((*path, "file")):
            self.error((*path, "file"), "is missing: the key file to install")
        dest = self.text(data, "dest", path, "")
        if dest and not dest.startswith("/"):
            self.error((*path, "dest"), "must be an absolute path in the allocation")
        if kind == "gpg" and not dest and not self.problems.touched((*path, "dest")):
            self.error((*path, "dest"), "is missing: where a gpg key goes in the allocation")
        return AllocationKey(type=kind or "ssh", file=file, dest=dest)

    # --- nodes -----------------------------------------------------------------------------------

    def node(self, value: Any, path: Path) -> Node:
        name = str(path[-1])
        if not _NAME.fullmatch(name):
            self.error(path, _bad_name("a node", name))
        data = self.mapping(value, path, "a node")
        if data is None:
            return Node(name, ())
        self.keys(data, path, _NODE_KEYS)
        allocations = self.names(data, "allocations", path, "an allocation")
        if data.get("allocations") is None:
            self.error((*path, "allocations"), "is missing: the allocations this node runs")
        elif not allocations and not self.problems.touched((*path, "allocations")):
            self.error((*path, "allocations"), "cannot be empty: a node runs allocations")
        only = allocations[0] if len(allocations) == 1 and allocations[0] else None
        ports = self.items(data, "ports", path, lambda v, p: self.port(v, p, only))
        location = data.get("location")
        return Node(
            name=name,
            allocations=allocations,
            ports=tuple(ports),
            location=LocationConstraints()
            if location is None
            else self.location(location, (*path, "location")),
            peer=self.peer_did(data["peer"], (*path, "peer"))
            if data.get("peer") is not None
            else "",
            redundancy=self.integer(data, "redundancy", path, 0, low=0, high=_MAX_REDUNDANCY),
            failure_recovery=self.choice(
                data, "failure_recovery", path, NODE_RECOVERY, default="stay_down"
            ),
        )

    def port(self, value: Any, path: Path, only: str | None) -> NodePort:
        data = self.mapping(value, path, "a port (public, private, allocation)")
        if data is None:  # placeholders keep the list's indices for the cross-field checks
            return NodePort(0, "")
        self.keys(data, path, _PORT_KEYS)
        if data.get("private") is None:
            self.error((*path, "private"), "is missing: the port inside the allocation")
        private = self.integer(data, "private", path, 0, low=1, high=65535)
        public = self.integer(data, "public", path, 0, low=0, high=65535)
        if 0 < public < _LOWEST_PUBLIC_PORT:
            self.error(
                (*path, "public"),
                f"must be 0 (the provider picks one) or from {_LOWEST_PUBLIC_PORT} to 65535,"
                f" got {public}",
            )
        allocation = self.text(data, "allocation", path, "")
        if not allocation and data.get("allocation") is None:
            if only is None:
                self.error(
                    (*path, "allocation"),
                    "is missing: which of the node's allocations the port leads to",
                )
            allocation = only or ""
        return NodePort(private=private, allocation=allocation, public=public)

    def location(self, value: Any, path: Path) -> LocationConstraints:
        data = self.mapping(value, path, "location constraints (accept, reject)")
        if data is None:
            return LocationConstraints()
        self.keys(data, path, _LOCATION_KEYS)
        return LocationConstraints(
            accept=tuple(self.items(data, "accept", path, self.place)),
            reject=tuple(self.items(data, "reject", path, self.place)),
        )

    def place(self, value: Any, path: Path) -> Location | None:
        data = self.mapping(value, path, "a location (continent, country, city)")
        if data is None:
            return None
        self.keys(data, path, _PLACE_KEYS)
        continent = ""
        raw = data.get("continent")
        if raw is None:
            self.error((*path, "continent"), f"is missing: one of {', '.join(CONTINENTS)}")
        else:
            lowered = raw.strip().lower() if isinstance(raw, str) else None
            matches = [c for c in CONTINENTS if c.lower() == lowered]
            if matches:
                continent = matches[0]
            else:
                self.error(
                    (*path, "continent"),
                    f"unknown continent {_shown(raw)}{_hint(str(raw), CONTINENTS)}"
                    f" (one of {', '.join(CONTINENTS)})",
                )
        country = self.text(data, "country", path, "")
        if country and not _COUNTRY.fullmatch(country):
            self.error(
                (*path, "country"), f"must be a two-letter country code (DE, KE), got {country!r}"
            )
        city = self.text(data, "city", path, "")
        if city and not country and not self.problems.touched((*path, "country")):
            self.error((*path, "city"), "needs a country next to it")
        asn = self.integer(data, "asn", path, 0, low=1, high=2**32 - 1) if "asn" in data else 0
        return Location(
            continent=continent,
            country=country.upper(),
            city=city,
            asn=asn,
            isp=self.text(data, "isp", path, ""),
        )

    def peer_did(self, value: Any, path: Path) -> str:
        if not isinstance(value, str):
            self.error(path, f"must be a provider's DID (did:key:z6Mk...), got {_shown(value)}")
            return ""
        try:
            public_key_from_did(value)
        except InvalidDid as exc:
            self.error(path, f"not a provider's DID: {exc}")
            return ""
        return value

    def edge(self, value: Any, path: Path) -> EdgeConstraint:
        data = self.mapping(value, path, "an edge constraint (edges, rtt, bw)")
        if data is None:
            return EdgeConstraint(("", ""))
        self.keys(data, path, _EDGE_KEYS)
        edges = data.get("edges")
        pair: tuple[str, str] = ("", "")
        if edges is None:
            self.error((*path, "edges"), "is missing: the two nodes, [node1, node2]")
        elif (
            not isinstance(edges, list)
            or len(edges) != 2
            or not all(isinstance(e, str) for e in edges)
        ):
            self.error(
                (*path, "edges"), f"must name two nodes, [node1, node2], got {_shown(edges)}"
            )
        elif edges[0] == edges[1]:
            self.error((*path, "edges"), f"must name two different nodes, got {edges[0]!r} twice")
        else:
            pair = (edges[0], edges[1])
        rtt = self.unit(data, "rtt", path, parse_rtt, 0)
        bw = self.unit(data, "bw", path, parse_bandwidth, 0)
        if not rtt and not bw and not self.problems.touched_any([(*path, "rtt"), (*path, "bw")]):
            self.error(path, "asks for nothing: give rtt (milliseconds) or bw (bits per second)")
        return EdgeConstraint(edges=pair, rtt=rtt, bw=bw)

    # --- generic fields --------------------------------------------------------------------------

    def keys(self, data: Mapping[str, Any], path: Path, known: Collection[str]) -> None:
        """Refuse the keys of ``data`` that are not ``known``, each with a hint."""
        for key in data:
            if key in known:
                continue
            if not path and key in _UNSUPPORTED:
                self.error((key,), f"{key!r} is not supported: {_UNSUPPORTED[key]}")
                continue
            aliases = [a for a in _ALIASES.get(key, ()) if a in known]
            hint = f" (did you mean {aliases[0]!r}?)" if aliases else _hint(key, known)
            listing = "" if hint else f" (known here: {', '.join(known)})"
            self.error((*path, key), f"unknown key {key!r}{hint}{listing}")

    def mapping(
        self, value: Any, path: Path, what: str, *, optional: bool = False
    ) -> dict[str, Any] | None:
        if value is None and optional:
            return None
        if not isinstance(value, dict):
            self.error(path, f"must be {what}, got {_kind(value)}")
            return None
        return value

    def named(
        self,
        data: Mapping[str, Any],
        key: str,
        read: Callable[[Any, Path], T | None],
        *,
        required: bool = False,
    ) -> dict[str, T] | None:
        """A top-level mapping of names to records (``allocations``, ``nodes``)."""
        value = data.get(key)
        if value is None:
            if required:
                self.error((key,), f"is missing: the ensemble's {key}")
            return None
        raw = self.mapping(value, (key,), f"a mapping of names to {key}")
        if raw is None:
            return None
        if required and not raw:
            self.error((key,), f"cannot be empty: an ensemble has at least one of its {key}")
        result: dict[str, T] = {}
        for name, item in raw.items():
            record = read(item, (key, name))
            if record is not None:
                result[name] = record
        return result

    def section(
        self,
        data: Mapping[str, Any],
        key: str,
        path: Path,
        read: Callable[[Mapping[str, Any], Path], T],
        what: str,
    ) -> T | None:
        value = data.get(key)
        if value is None:
            self.error((*path, key), f"is missing: {what}")
            return None
        mapping = self.mapping(value, (*path, key), f"a mapping ({what})")
        return None if mapping is None else read(mapping, (*path, key))

    def items(
        self, data: Mapping[str, Any], key: str, path: Path, read: Callable[[Any, Path], T | None]
    ) -> list[T]:
        value = data.get(key)
        if value is None:
            return []
        where = (*path, key)
        if not isinstance(value, list):
            self.error(where, f"must be a list, got {_kind(value)}")
            return []
        result = [read(item, (*where, i)) for i, item in enumerate(value)]
        return [r for r in result if r is not None]

    def names(
        self, data: Mapping[str, Any], key: str, path: Path, what: str, *, unique: bool = True
    ) -> tuple[str, ...]:
        """A list of names (``depends_on``, ``provision``, a node's ``allocations``); a wrong
        item is reported and left as ``""``, so that indices match the file's."""
        value = data.get(key)
        where = (*path, key)
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(where, f"must be a list of names, got {_kind(value)}")
            return ()
        result: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.error((*where, i), f"must be the name of {what}, got {_shown(item)}")
                item = ""
            elif unique and item in result:
                self.error((*where, i), f"{item!r} is listed twice")
            result.append(item)
        return tuple(result)

    def choice(
        self, data: Mapping[str, Any], key: str, path: Path, options: tuple[T, ...], *, default: Any
    ) -> Any:
        value = data.get(key)
        if value is None:
            return default
        if value in options:
            return value
        hint = _hint(value, [str(o) for o in options]) if isinstance(value, str) else ""
        self.error(
            (*path, key),
            f"must be one of {', '.join(map(str, options))}, got {_shown(value)}{hint}",
        )
        return default

    def text(
        self,
        data: Mapping[str, Any],
        key: str,
        path: Path,
        default: str,
        *,
        allow_empty: bool = False,
    ) -> str:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.error((*path, key), f"must be text, got {_shown(value)}")
            return default
        if not value.strip() and not allow_empty:
            self.error((*path, key), "cannot be empty (leave the key out instead)")
            return default
        return value

    def boolean(self, data: Mapping[str, Any], key: str, path: Path, *, default: Any) -> Any:
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error((*path, key), f"must be true or false, got {_shown(value)}")
            return default
        return value

    def integer(
        self, data: Mapping[str, Any], key: str, path: Path, default: int, *, low: int, high: int
    ) -> int:
        value = data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.error((*path, key), f"must be a whole number, got {_shown(value)}")
            return default
        if not low <= value <= high:
            self.error((*path, key), f"must be from {low} to {high}, got {value}")
            return default
        return value

    def unit(
        self,
        data: Mapping[str, Any],
        key: str,
        path: Path,
        parse: Callable[[object], T],
        default: T,
    ) -> T:
        value = data.get(key)
        if value is None:
            return default
        try:
            return parse(value)
        except BadRequest as exc:
            self.error((*path, key), str(exc))
            return default

    def missing(self, path: Path, what: str, placeholder: T) -> T:
        self.error(path, f"is missing: {what}")
        return placeholder


def _is_hostname(value: str) -> bool:
    if not value or len(value) > 253:
        return False
    return all(_ALLOCATION_NAME.fullmatch(label) for label in value.rstrip(".").split("."))


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _bad_name(what: str, name: str) -> str:
    return (
        f"{name!r} is not a valid name for {what}: letters, digits, '-' and '_',"
        " at most 63, starting with a letter or digit"
    )


def _hint(word: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value[:60]!r}"
    return type(value).__name__


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value[:60])
    if isinstance(value, dict | list) or value is None:
        return _kind(value)
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value)
