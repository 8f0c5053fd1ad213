"""What every executor offers: start an execution, wait, stop, logs, stats, cleanup, recover.

An executor runs the workloads of allocations: containers (``docker``), sandboxed processes
(``process``) or nothing at all (``null``, for simulations). The node talks to all of them
through these types only (DESIGN §3.5, docs/executors.md).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, final

from ..errors import ExecutionRefused
from ..resources import Resources

__all__ = [
    "Availability",
    "CommandResult",
    "Execution",
    "ExecutionSpec",
    "ExecutionStatus",
    "Executor",
    "LogLine",
    "PortMapping",
    "State",
    "Stats",
]


class State(enum.Enum):
    """Where an execution is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    #: Exited on its own with code 0.
    COMPLETED = "completed"
    #: Exited on its own with a non-zero code, was killed for breaking a limit, or could not
    #: start; ``ExecutionStatus.reason`` says which.
    FAILED = "failed"
    #: Stopped on request (``stop``).
    STOPPED = "stopped"

    @property
    def finished(self) -> bool:
        return self in (State.COMPLETED, State.FAILED, State.STOPPED)


@final
@dataclass(frozen=True, slots=True)
class PortMapping:
    """A public port on the host forwarded to a port inside the execution."""

    host_port: int
    container_port: int
    protocol: Literal["tcp", "udp"] = "tcp"


@final
@dataclass(frozen=True)
class ExecutionSpec:
    """What to run, for which allocation, within which limits.

    ``image`` is for container executors; ``command`` is the argv (for ``docker``, the
    container's cmd; for ``process``, the program and its arguments). ``resources`` are the
    allocation's: they become the CPU, memory and GPU limits; ``limits`` adds the rest
    (``pids``, ``open_files``, ``cpu_seconds``) where an executor can enforce them.
    """

    allocation_id: str
    ensemble_id: str = ""
    image: str = ""
    command: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: str = ""
    user: str = ""
    resources: Resources = field(default_factory=Resources)
    limits: Mapping[str, int] = field(default_factory=dict)
    ports: tuple[PortMapping, ...] = ()
    privileged: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


@final
@dataclass(frozen=True, slots=True)
class ExecutionStatus:
    """An execution's state, with its exit code and the reason for a failure once known."""

    state: State
    exit_code: int | None = None
    reason: str = ""
    started_at: float | None = None
    finished_at: float | None = None


@final
@dataclass(frozen=True, slots=True)
class LogLine:
    """One chunk of output: which stream, when (Unix time), and the text."""

    stream: Literal["stdout", "stderr"]
    time: float
    text: str


@final
@dataclass(frozen=True, slots=True)
class Stats:
    """Resource use of a running execution; ``None`` where the executor cannot know."""

    cpu_seconds: float | None = None
    cpu_percent: float | None = None
    memory: int | None = None
    memory_limit: int | None = None
    pids: int | None = None
    network_rx: int | None = None
    network_tx: int | None = None


@final
@dataclass(frozen=True, slots=True)
class Availability:
    """Whether an executor can run anything here, and if not, why (for status and bids)."""

    available: bool
    reason: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


@final
@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a command run inside an execution gave: its exit code and its output (stdout and
    stderr together, at most 64 KiB)."""

    exit_code: int | None
    output: str


class Execution(abc.ABC):
    """One running (or finished) workload, as returned by :meth:`Executor.start`."""

    #: The executor's own name for it: a container id, a process id, ...
    id: str
    spec: ExecutionSpec

    @abc.abstractmethod
    def status(self) -> ExecutionStatus:
        """The status as last known (no I/O)."""

    @abc.abstractmethod
    async def wait(self) -> ExecutionStatus:
        """Wait until the execution has finished; its final status."""

    @abc.abstractmethod
    async def stop(self, grace: float = 10.0) -> ExecutionStatus:
        """Ask it to stop (SIGTERM), kill it after ``grace`` seconds; its final status."""

    @abc.abstractmethod
    def logs(self, *, follow: bool = False, since: float | None = None) -> AsyncIterator[LogLine]:
        """Its output, stdout and stderr, kept after it ends; ``follow`` streams until it does."""

    @abc.abstractmethod
    async def stats(self) -> Stats:
        """Current resource use."""

    @abc.abstractmethod
    async def cleanup(self) -> None:
        """Remove what the execution left (container, work files); it must have finished."""

    async def run_command(self, argv: Sequence[str]) -> CommandResult:
        """Run ``argv`` inside the running execution (health checks of type ``command``).
        Executors that cannot refuse it with :class:`~dmsnode.errors.ExecutionRefused`; the
        caller bounds how long it may take (cancellation)."""
        raise ExecutionRefused(f"the {type(self).__name__} cannot run commands inside it")


class Executor(abc.ABC):
    """A way to run executions. Used as ``async with`` so that its background tasks (log
    pumps, waiters) have an owner nursery; leaving the block does not kill executions (they
    survive a node restart and are found again by :meth:`recover`)."""

    #: ``docker``, ``process``, ``null``...
    name: str

    @abc.abstractmethod
    async def availability(self) -> Availability:
        """Whether this executor can run anything on this machine, and why not."""

    @abc.abstractmethod
    async def start(self, spec: ExecutionSpec) -> Execution:
        """Start ``spec`` and return once it is running (or raise, saying why it cannot)."""

    @abc.abstractmethod
    async def recover(self) -> list[Execution]:
        """The executions this node started earlier (before a restart), re-attached."""

    @abc.abstractmethod
    async def __aenter__(self) -> Executor: ...

    @abc.abstractmethod
    async def __aexit__(self, *exc_info: object) -> None: ...
