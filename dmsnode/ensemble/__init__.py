"""Ensembles: NuNet's v1 YAML format, read into typed records and checked whole (DESIGN §3.4).

``parse(text)`` gives an :class:`Ensemble` or raises :class:`~dmsnode.errors.EnsembleInvalid`
with every problem, each named by its path in the file and its line
(``allocations.web.resources.ram.size:12: ...``); ``validate(text)`` lists the problems.
See docs/ensembles.md.
"""

from __future__ import annotations

from ..errors import EnsembleInvalid
from ._document import dump, parse, parse_data, validate, validate_data
from ._errors import SpecError
from ._spec import (
    ALLOCATION_RECOVERY,
    ALLOCATION_TYPES,
    CONTINENTS,
    ESCALATIONS,
    EXECUTORS,
    NODE_RECOVERY,
    Allocation,
    AllocationKey,
    AllocationRecovery,
    AllocationType,
    CpuRequest,
    DiskRequest,
    DockerExecution,
    EdgeConstraint,
    Ensemble,
    Escalation,
    Execution,
    ExecutorName,
    GpuRequest,
    HealthCheck,
    HealthResponse,
    Location,
    LocationConstraints,
    Node,
    NodePort,
    NodeRecovery,
    NullExecution,
    ProcessExecution,
    RamRequest,
    ResourceRequest,
    Subnet,
)
from ._yaml import MAX_TEXT_BYTES

__all__ = [
    "ALLOCATION_RECOVERY",
    "ALLOCATION_TYPES",
    "CONTINENTS",
    "ESCALATIONS",
    "EXECUTORS",
    "MAX_TEXT_BYTES",
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
    "EnsembleInvalid",
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
    "SpecError",
    "Subnet",
    "dump",
    "parse",
    "parse_data",
    "validate",
    "validate_data",
]
