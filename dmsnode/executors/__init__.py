"""Executors: Docker containers, sandboxed processes and a null executor behind one interface
(DESIGN §3.5, docs/executors.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from ._docker import DockerExecution, DockerExecutor

__all__ = [
    "Availability",
    "DockerExecution",
    "DockerExecutor",
    "Execution",
    "ExecutionSpec",
    "ExecutionStatus",
    "Executor",
    "LogLine",
    "PortMapping",
    "State",
    "Stats",
]


def __getattr__(name: str) -> Any:
    # The docker executor brings aiodocker and trio-asyncio (which patches asyncio's loop
    # lookups): imported only by those who use it.
    if name in ("DockerExecutor", "DockerExecution"):
        from . import _docker

        return getattr(_docker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
