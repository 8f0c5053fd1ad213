"""Executors: Docker containers, sandboxed processes and a null executor behind one interface
(DESIGN §3.5, docs/executors.md)."""

from __future__ import annotations

from ._interface import (
    Availability,
    Execution,
    ExecutionSpec,
    ExecutionStatus,
    Executor,
    LogLine,
    PortMapping,
    State,
    Stats,
)

__all__ = [
    "Availability",
    "Execution",
    "ExecutionSpec",
    "ExecutionStatus",
    "Executor",
    "LogLine",
    "PortMapping",
    "State",
    "Stats",
]
