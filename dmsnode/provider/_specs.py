"""From an ensemble allocation to what an executor runs: names, limits, ports, labels."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Final

from ..deployment import base_name
from ..ensemble import Allocation, DockerExecution, Ensemble, NullExecution, ProcessExecution
from ..executors import ExecutionSpec, PortMapping
from ..resources import Gpu, Resources

__all__ = ["execution_id", "execution_spec", "hosted_id", "port_mappings"]

_MAX_ID: Final = 128
_SAFE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: A null service with no ``run_for`` runs until stopped: a deadline no test will reach.
_FOREVER_MS: Final = 10**12


def hosted_id(deployment: str, slot: str) -> str:
    """The id of a hosted node: in the ledger, the store and events (``deployment/slot``)."""
    return f"{deployment}/{slot}"


def execution_id(deployment: str, slot: str, allocation: str) -> str:
    """The executors' id of one allocation of one slot: ``deployment.node.copy.allocation``
    (names cannot hold dots, so it is unambiguous), or a digest when that is too long."""
    node, _, copy = slot.partition("#")
    text = f"{deployment}.{node}.{copy or '0'}.{allocation}"
    if len(text) <= _MAX_ID and _SAFE.fullmatch(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    return f"{deployment[: _MAX_ID - 26]}.{digest}" if _SAFE.fullmatch(deployment) else digest


def port_mappings(
    ensemble: Ensemble, slot: str, static: Sequence[int], dynamic: Sequence[int]
) -> dict[str, tuple[PortMapping, ...]]:
    """Each allocation's port mappings: static ports as asked, dynamic ones in the order the
    node lists them (the ledger picked them in that order)."""
    node = ensemble.nodes[base_name(slot)]
    booked = set(static)
    picked = iter(dynamic)
    mappings: dict[str, list[PortMapping]] = {name: [] for name in node.allocations}
    for port in node.ports:
        if port.dynamic:
            public = next(picked)
        else:
            public = port.public
            if public not in booked:  # the ledger booked every static port: a bug otherwise
                raise RuntimeError(f"static port {public} of {slot} was not booked")
        mappings.setdefault(port.allocation, []).append(PortMapping(public, port.private))
    return {name: tuple(ports) for name, ports in mappings.items()}


def execution_spec(
    *,
    deployment: str,
    slot: str,
    name: str,
    allocation: Allocation,
    gpus: Sequence[Gpu],
    ports: Sequence[PortMapping],
    labels: Mapping[str, str],
) -> ExecutionSpec:
    """What the allocation's executor is asked to run."""
    amount = allocation.resources.amount()
    resources = Resources(
        cpu_cores=amount.cpu_cores,
        cpu_hz=amount.cpu_hz,
        ram=amount.ram,
        disk=amount.disk,
        gpus=tuple(gpus),
    )
    image, user, privileged = "", "", False
    command: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str] = {}
    working_dir = ""
    limits: dict[str, int] = {}
    execution = allocation.execution
    if isinstance(execution, DockerExecution):
        image, command, entrypoint = execution.image, execution.cmd, execution.entrypoint
        user, privileged = execution.user, execution.privileged
        env, working_dir = execution.environment, execution.working_directory
    elif isinstance(execution, ProcessExecution):
        command = execution.command
        env, working_dir = execution.environment, execution.working_directory
    else:
        assert isinstance(execution, NullExecution)
        run_for_ms = round(execution.run_for * 1000)
        if run_for_ms == 0 and allocation.type == "service":
            run_for_ms = _FOREVER_MS
        limits = {"run_for_ms": run_for_ms, "exit_code": execution.exit_code}
    return ExecutionSpec(
        allocation_id=execution_id(deployment, slot, name),
        ensemble_id=deployment,
        image=image,
        command=tuple(command),
        entrypoint=entrypoint,
        env=dict(env),
        working_dir=working_dir,
        user=user,
        resources=resources,
        limits=limits,
        ports=tuple(ports),
        privileged=privileged,
        labels=dict(labels),
    )
