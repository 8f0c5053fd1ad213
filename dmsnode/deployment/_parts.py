"""An ensemble cut into the parts providers see: one node's request, and one node's own
sub-ensemble (what a provider is sent at commit time and keeps while it hosts the node)."""

from __future__ import annotations

from typing import Any, Final

from ..ensemble import DockerExecution, Ensemble, Node, parse_data
from ..errors import BadRequest, EnsembleInvalid
from ..resources import Resources
from ._messages import NodeRequest

__all__ = ["COPY_MARK", "base_name", "node_part", "node_request", "node_requests", "read_part"]

#: Separates a node's name from its copy number in a slot name (``web#1``).
COPY_MARK: Final = "#"


def base_name(slot: str) -> str:
    """The ensemble node a slot is a copy of (``web#2`` -> ``web``)."""
    return slot.split(COPY_MARK, 1)[0]


def node_request(ensemble: Ensemble, slot: str) -> NodeRequest:
    """What the node behind ``slot`` asks of a provider."""
    node = ensemble.nodes[base_name(slot)]
    allocations = [ensemble.allocations[name] for name in node.allocations]
    total = Resources()
    for allocation in allocations:
        total = total + allocation.resources.amount()
    return NodeRequest(
        node=slot,
        executors=tuple(sorted({a.executor for a in allocations})),
        resources=total,
        gpus=tuple(gpu for a in allocations for gpu in a.resources.gpus),
        ports=node.port_request(),
        location=node.location,
        privileged=any(
            isinstance(a.execution, DockerExecution) and a.execution.privileged for a in allocations
        ),
        peer=node.peer,
    )


def node_requests(ensemble: Ensemble) -> list[NodeRequest]:
    """One request per slot: every node, and each of its redundant copies (``web#1``...)."""
    return [
        node_request(ensemble, slot)
        for name, node in ensemble.nodes.items()
        for slot in _slots(name, node)
    ]


def _slots(name: str, node: Node) -> list[str]:
    return [name] + [f"{name}{COPY_MARK}{i}" for i in range(1, node.redundancy + 1)]


def node_part(ensemble: Ensemble, name: str) -> dict[str, Any]:
    """The sub-ensemble of node ``name``: the node and its allocations only (in the file format).
    It is an ensemble in its own right: ``depends_on`` never leaves a node."""
    node = ensemble.nodes[name]
    data: dict[str, Any] = {
        "version": ensemble.version,
        "allocations": {a: ensemble.allocations[a].to_dict() for a in node.allocations},
        "nodes": {name: node.to_dict()},
    }
    scripts = {s for a in node.allocations for s in ensemble.allocations[a].provision}
    if scripts:
        data["scripts"] = {s: ensemble.scripts[s] for s in scripts if s in ensemble.scripts}
    if ensemble.metadata:
        data["metadata"] = dict(ensemble.metadata)
    return data


def read_part(data: Any, slot: str) -> Ensemble:
    """A node's sub-ensemble sent by an orchestrator: it must parse, and hold exactly the node
    behind ``slot``. Refused with :class:`BadRequest` saying what is wrong."""
    try:
        part = parse_data(data)
    except EnsembleInvalid as exc:
        raise BadRequest(f"the ensemble part for {slot} is invalid: {exc}") from None
    if list(part.nodes) != [base_name(slot)]:
        raise BadRequest(
            f"the ensemble part for {slot} must hold exactly the node {base_name(slot)!r},"
            f" it holds {sorted(part.nodes)}"
        )
    return part
