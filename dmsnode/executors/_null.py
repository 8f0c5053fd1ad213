"""The ``null`` executor: accepts any spec, "runs" for a while, and ends as told. For simulations
and benchmarks of everything around executions (deployments, the ledger, the network).

An execution is a deadline on Trio's clock and nothing else: no task, thread or process, so
thousands cost next to nothing, and under a fake clock (``autojump_clock``) they end at once.
How long one runs and how it ends: ``spec.limits["run_for_ms"]`` and ``spec.limits
["exit_code"]``, else the executor's ``run_for`` and ``exit_code``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from typing import Final, final

import trio

from ..errors import ExecutionRefused, ExecutorError
from ._interface import (
    Availability,
    Execution,
    ExecutionSpec,
    ExecutionStatus,
    Executor,
    LogLine,
    State,
    Stats,
)

__all__ = ["NullExecution", "NullExecutor"]

#: The keys of ``ExecutionSpec.limits`` that shape a null execution.
RUN_FOR_MS: Final = "run_for_ms"
EXIT_CODE: Final = "exit_code"

_ids = itertools.count(1)


@final
class NullExecution(Execution):
    """A pretend execution: running until its deadline, then completed (or failed, with
    the exit code it was given); ``stop`` ends it at once."""

    def __init__(self, spec: ExecutionSpec, run_for: float, exit_code: int) -> None:
        self.id = f"null-{next(_ids)}"
        self.spec = spec
        self._run_for = run_for
        self._exit_code = exit_code
        self._started = time.time()
        self._deadline = trio.current_time() + run_for
        self._stopped: ExecutionStatus | None = None
        self._stop = trio.Event()
        self._cleaned = False

    def __repr__(self) -> str:
        return f"<NullExecution {self.id} {self.spec.allocation_id}>"

    def status(self) -> ExecutionStatus:
        if self._stopped is not None:
            return self._stopped
        if trio.current_time() < self._deadline:
            return ExecutionStatus(State.RUNNING, started_at=self._started)
        code = self._exit_code
        return ExecutionStatus(
            State.COMPLETED if code == 0 else State.FAILED,
            code,
            "" if code == 0 else f"exited with code {code}",
            self._started,
            self._started + self._run_for,
        )

    async def wait(self) -> ExecutionStatus:
        with trio.move_on_at(self._deadline):
            await self._stop.wait()
        return self.status()

    async def stop(self, grace: float = 10.0) -> ExecutionStatus:
        await trio.lowlevel.checkpoint()
        status = self.status()
        if status.state.finished:
            return status
        self._stopped = ExecutionStatus(
            State.STOPPED, None, "stopped on request", self._started, time.time()
        )
        self._stop.set()
        return self._stopped

    async def logs(
        self, *, follow: bool = False, since: float | None = None
    ) -> AsyncIterator[LogLine]:
        """One line, written when it started; ``follow`` then waits for the end."""
        if self._cleaned:
            raise ExecutorError(f"{self.id} was cleaned up: its logs are gone")
        await trio.lowlevel.checkpoint()
        if since is None or self._started >= since:
            command = " ".join(self.spec.command) or "(no command)"
            yield LogLine(
                "stdout",
                self._started,
                f"null executor: {command} runs for {self._run_for:g} s\n",
            )
        if follow:
            await self.wait()

    async def stats(self) -> Stats:
        await trio.lowlevel.checkpoint()
        return Stats(
            cpu_seconds=0.0,
            cpu_percent=0.0,
            memory=0,
            memory_limit=self.spec.resources.ram or None,
            pids=0,
            network_rx=0,
            network_tx=0,
        )

    async def cleanup(self) -> None:
        await trio.lowlevel.checkpoint()
        if not self.status().state.finished:
            raise ExecutorError(f"{self.id} is still running: stop it before cleaning up")
        self._cleaned = True


@final
class NullExecutor(Executor):
    """Runs nothing: every execution lasts ``run_for`` seconds and ends with ``exit_code``
    (unless its spec's limits say otherwise). Nothing survives a restart."""

    name = "null"

    def __init__(self, *, run_for: float = 0.0, exit_code: int = 0) -> None:
        if run_for < 0:
            raise ValueError(f"run_for cannot be negative ({run_for})")
        self._run_for = run_for
        self._exit_code = exit_code
        self._open = False
        self._closed = False

    async def __aenter__(self) -> NullExecutor:
        if self._open or self._closed:
            raise RuntimeError("a NullExecutor is entered once")
        await trio.lowlevel.checkpoint()
        self._open = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._open = False
        self._closed = True

    async def availability(self) -> Availability:
        await trio.lowlevel.checkpoint()
        return Availability(
            True,
            details={
                "run_for": f"{self._run_for:g} s",
                "exit_code": str(self._exit_code),
                "isolation": "none: nothing runs",
            },
        )

    async def start(self, spec: ExecutionSpec) -> NullExecution:
        if not self._open:
            state = "closed" if self._closed else "not entered"
            raise ExecutorError(f"the null executor is {state} (use it as `async with`)")
        await trio.lowlevel.checkpoint()
        run_for = self._run_for
        if RUN_FOR_MS in spec.limits:
            run_for_ms = spec.limits[RUN_FOR_MS]
            if not isinstance(run_for_ms, int) or run_for_ms < 0:
                raise ExecutionRefused(
                    f"allocation {spec.allocation_id}: limits.{RUN_FOR_MS} must be a "
                    f"non-negative integer, got {run_for_ms!r}"
                )
            run_for = run_for_ms / 1000
        exit_code = spec.limits.get(EXIT_CODE, self._exit_code)
        return NullExecution(spec, run_for, exit_code)

    async def recover(self) -> list[Execution]:
        """Nothing: null executions do not outlive the executor."""
        await trio.lowlevel.checkpoint()
        return []
