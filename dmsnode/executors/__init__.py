"""Executors: Docker containers, sandboxed processes and a null executor behind one interface
(DESIGN §3.5, docs/executors.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._interface import (
    Availability,
    CommandResult,
    Execution,
    ExecutionSpec,
    ExecutionStatus,
    Executor,
    LogLine,
    PortMapping,
    State,
    Stats,
)
from ._null import NullExecution, NullExecutor
from ._process import ProcessExecution, ProcessExecutor
from ._registry import EXECUTORS_GROUP, availabilities, available_executors

if TYPE_CHECKING:
    from ._docker import DockerExecution, DockerExecutor

__all__ = [
    "EXECUTORS_GROUP",
    "Availability",
    "CommandResult",
    "DockerExecution",
    "DockerExecutor",
    "Execution",
    "ExecutionSpec",
    "ExecutionStatus",
    "Executor",
    "LogLine",
    "NullExecution",
    "NullExecutor",
    "PortMapping",
    "ProcessExecution",
    "ProcessExecutor",
    "State",
    "Stats",
    "availabilities",
    "available_executors",
]


def __getattr__(name: str) -> Any:
    # The docker executor brings aiodocker and trio-asyncio (which patches asyncio's loop
    # lookups): imported only by those who use it.
    if name in ("DockerExecutor", "DockerExecution"):
        from . import _docker

        return getattr(_docker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
