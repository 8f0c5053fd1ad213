"""A node this provider hosts: its allocations' executions, their restarts and health.

A :class:`HostedNode` runs as one task in the provider's nursery (:meth:`HostedNode.run`); every
execution it starts gets a watcher (and a health checker) inside it, so cancelling the node's task
stops watching, never the executions: those outlive a daemon restart and are recovered.

Allocation failure recovery (the allocation's ``failure_recovery``) happens here, on the
provider: ``one_for_one`` restarts the failed allocation, ``one_for_all`` every allocation of the
node, ``rest_for_one`` the failed one and those started after it; each at most
:data:`RESTART_LIMIT` times, with a growing pause. ``stay_down``, or a limit reached, leaves the
allocation failed, and the orchestrator (told by a status push) applies the node's recovery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, final

import trio

from ..ensemble import Allocation as AllocationSpec
from ..ensemble import Ensemble
from ..errors import DeploymentRefused, DmsError
from ..executors import Execution, ExecutionSpec, ExecutionStatus, Executor, LogLine, State
from ._health import UNSUPPORTED, probe

__all__ = ["RESTART_LIMIT", "HostedAllocation", "HostedNode", "start_order"]

log = logging.getLogger("dmsnode.provider")

#: Restarts of one allocation by its own failure_recovery before the orchestrator is left to act.
RESTART_LIMIT: Final = 3
#: Seconds before the n-th restart: 0.5, 1, 2, ... at most 10.
_BACKOFF: Final = (0.5, 10.0)
#: Lines of output kept from a run that is replaced by a restart.
_KEPT_LINES: Final = 1000
_STOP_GRACE: Final = 5.0
#: Failed checks (one a second) allowed before a service first answers healthy.
_FIRST_TRIES: Final = 10


@final
class HostedAllocation:
    """One allocation of a hosted node: its spec, its current execution and what happened."""

    def __init__(
        self, name: str, allocation: AllocationSpec, spec: ExecutionSpec, executor: Executor | None
    ) -> None:
        self.name = name
        self.allocation = allocation
        self.spec = spec
        self.executor = executor
        self.execution: Execution | None = None
        self.state = "pending"
        self.exit_code: int | None = None
        self.reason = ""
        #: ``True``/``False`` once a health check has answered; ``None`` before, or without one.
        self.healthy: bool | None = None
        self.health = ""
        self.restarts = 0
        self.gave_up = False
        self.started_at: float | None = None
        self.finished_at: float | None = None
        #: Output of earlier runs (before restarts), oldest first.
        self.earlier: list[LogLine] = []
        self._stopping = False
        self._unhealthy: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed", "stopped")

    def snapshot(self) -> dict[str, Any]:
        """The allocation's status, as pushed to the orchestrator."""
        return {
            "name": self.name,
            "type": self.allocation.type,
            "state": self.state,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "healthy": self.healthy,
            "health": self.health,
            "restarts": self.restarts,
            "gave_up": self.gave_up,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "execution": None if self.execution is None else self.execution.id,
        }

    async def logs(self, *, since: float | None = None, limit: int = 1000) -> list[LogLine]:
        """The last ``limit`` lines, earlier runs included."""
        lines = [line for line in self.earlier if since is None or line.time > since]
        if self.execution is not None:
            async for line in self.execution.logs(since=since):
                lines.append(line)
        return lines[-limit:] if limit > 0 else []


Notify = Callable[["HostedNode", HostedAllocation], None]


@final
class HostedNode:
    """One node of one deployment that this provider hosts (``id`` is ``deployment/slot``)."""

    def __init__(
        self,
        *,
        id: str,
        deployment: str,
        slot: str,
        orchestrator: str,
        part: Ensemble,
        allocations: Mapping[str, HostedAllocation],
        ports: Sequence[Mapping[str, Any]],
        notify: Notify,
    ) -> None:
        self.id = id
        self.deployment = deployment
        self.slot = slot
        self.orchestrator = orchestrator
        self.part = part
        self.allocations = dict(allocations)
        self.ports = [dict(p) for p in ports]
        self.order = start_order(part, list(self.allocations))
        self.last_contact = time.time()
        self._notify = notify
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self._lock = trio.Lock()

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "deployment": self.deployment,
            "node": self.slot,
            "allocations": {name: a.snapshot() for name, a in self.allocations.items()},
            "ports": self.ports,
        }

    @property
    def done(self) -> bool:
        """Every allocation ran to a successful end (a node of tasks that is over)."""
        return all(a.state == "completed" for a in self.allocations.values())

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Watch this node's executions until :meth:`close`; returns at once when closed."""
        with self._scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for allocation in self.allocations.values():
                    if allocation.execution is not None and not allocation.finished:
                        self._watch(allocation)
                task_status.started()
                await trio.sleep_forever()

    def close(self) -> None:
        """Stop watching (executions go on running)."""
        self._scope.cancel()

    # --- starting and stopping ---------------------------------------------------------------

    async def start(self, name: str) -> None:
        """Start allocation ``name`` (nothing happens if it runs), for the orchestrator, which
        learns the outcome from the reply (no status push). Refused with
        :class:`DeploymentRefused` saying why it could not start."""
        async with self._lock:
            await self._start(self.allocations[name], tell=False)

    async def restart(self, names: Sequence[str] | None = None, *, fresh: bool = False) -> None:
        """Stop then start ``names`` (default: all), in dependency order. ``fresh`` (a restart
        the orchestrator asked for) also gives them their restarts back."""
        chosen = [n for n in self.order if names is None or n in names]
        async with self._lock:
            for name in reversed(chosen):
                await self._stop(self.allocations[name], _STOP_GRACE)
            for name in chosen:
                allocation = self.allocations[name]
                if fresh:
                    allocation.restarts, allocation.gave_up = 0, False
                await self._start(allocation, tell=not fresh)

    async def stop_one(self, name: str, grace: float = _STOP_GRACE) -> None:
        """Stop allocation ``name`` (the others go on)."""
        async with self._lock:
            await self._stop(self.allocations[name], grace)

    async def stop(self, grace: float = _STOP_GRACE) -> None:
        """Stop every allocation, dependants first."""
        async with self._lock:
            for name in reversed(self.order):
                await self._stop(self.allocations[name], grace)

    async def cleanup(self) -> None:
        """Remove what the executions left (after :meth:`stop`)."""
        for allocation in self.allocations.values():
            if allocation.execution is not None:
                try:
                    await allocation.execution.cleanup()
                except DmsError as exc:
                    log.warning("cleanup of %s/%s: %s", self.id, allocation.name, exc)

    async def _start(self, allocation: HostedAllocation, *, tell: bool = True) -> None:
        """Start ``allocation``; ``tell``: push its coming up (not when it is the answer to
        the orchestrator's own call). A failure to start is always pushed."""
        if allocation.state in ("starting", "running"):
            return
        if allocation.executor is None:
            self._set(allocation, "failed", reason=f"no {allocation.allocation.executor} executor")
            raise DeploymentRefused(f"{self.id}/{allocation.name}: {allocation.reason}")
        if allocation.execution is not None:
            await self._retire(allocation)
        allocation.exit_code, allocation.reason, allocation.finished_at = None, "", None
        allocation.healthy, allocation.health = None, ""
        allocation._stopping, allocation._unhealthy = False, None
        self._set(allocation, "starting", tell=False)  # a moment's state: never pushed
        try:
            execution = await allocation.executor.start(allocation.spec)
        except DmsError as exc:
            self._set(allocation, "failed", reason=f"could not start: {exc}")
            raise DeploymentRefused(f"{self.id}/{allocation.name} could not start: {exc}") from None
        allocation.execution = execution
        allocation.started_at = time.time()
        self._set(allocation, "running", tell=tell)
        self._watch(allocation)

    async def _retire(self, allocation: HostedAllocation) -> None:
        """Keep the output of a finished run, then remove it (before a restart)."""
        execution = allocation.execution
        assert execution is not None
        kept = [line async for line in execution.logs()]
        allocation.earlier = (allocation.earlier + kept)[-_KEPT_LINES:]
        try:
            await execution.cleanup()
        except DmsError as exc:
            log.warning("cleanup of %s/%s before restart: %s", self.id, allocation.name, exc)
        allocation.execution = None

    async def _stop(self, allocation: HostedAllocation, grace: float) -> None:
        execution = allocation.execution
        if execution is None or allocation.finished:
            return
        allocation._stopping = True
        status = await execution.stop(grace)
        self._finish(allocation, status, stopped=True)

    # --- watching ----------------------------------------------------------------------------

    def _watch(self, allocation: HostedAllocation) -> None:
        if self._nursery is None:  # not running yet: run() watches it when it starts
            return
        execution = allocation.execution
        assert execution is not None
        self._nursery.start_soon(self._wait, allocation, execution)
        if allocation.allocation.healthcheck is not None:
            self._nursery.start_soon(self._check_health, allocation, execution)

    async def _wait(self, allocation: HostedAllocation, execution: Execution) -> None:
        status = await execution.wait()
        if allocation.execution is not execution or allocation.finished:
            return  # replaced by a restart, or stopped on request meanwhile
        self._finish(allocation, status, stopped=allocation._stopping)
        if allocation.state == "failed":
            await self._recover(allocation)

    def _finish(
        self, allocation: HostedAllocation, status: ExecutionStatus, *, stopped: bool
    ) -> None:
        if allocation.finished:
            return
        allocation.exit_code = status.exit_code
        allocation.finished_at = status.finished_at or time.time()
        if allocation._unhealthy is not None:
            self._set(allocation, "failed", reason=f"unhealthy: {allocation._unhealthy}")
        elif stopped and status.state is not State.FAILED:
            self._set(allocation, "stopped", reason=status.reason or "stopped on request")
        elif status.state is State.STOPPED and not stopped:
            self._set(allocation, "failed", reason=status.reason or "stopped from outside")
        else:
            self._set(allocation, status.state.value, reason=status.reason)

    async def _recover(self, allocation: HostedAllocation) -> None:
        strategy = allocation.allocation.failure_recovery
        if strategy == "stay_down":
            return
        if allocation.restarts >= RESTART_LIMIT:
            allocation.gave_up = True
            self._set(
                allocation,
                "failed",
                reason=f"{allocation.reason} (gave up after {allocation.restarts} restarts)",
            )
            return
        low, high = _BACKOFF
        await trio.sleep(min(high, low * 2**allocation.restarts))
        if strategy == "one_for_one":
            names = [allocation.name]
        elif strategy == "one_for_all":
            names = list(self.order)
        else:  # rest_for_one
            names = self.order[self.order.index(allocation.name) :]
        log.info("%s: %s failed, restarting %s (%s)", self.id, allocation.name, names, strategy)
        allocation.restarts += 1
        try:
            await self.restart(names)
        except DeploymentRefused as exc:
            log.warning("%s: restart failed: %s", self.id, exc)

    async def _check_health(self, allocation: HostedAllocation, execution: Execution) -> None:
        check = allocation.allocation.healthcheck
        assert check is not None
        failures = 0
        while allocation.execution is execution and not allocation.finished:
            problem = await probe(check, allocation.spec.ports, execution)
            if allocation.execution is not execution or allocation.finished:
                return
            if problem == UNSUPPORTED:
                allocation.health = (
                    f"{check.type} health checks are not supported by the "
                    f"{allocation.allocation.executor} executor: judged by its state"
                )
                self._notify(self, allocation)
                return
            if problem is None:
                failures = 0
                if allocation.healthy is not True:
                    allocation.healthy, allocation.health = True, "healthy"
                    self._notify(self, allocation)
            else:
                failures += 1
                allocation.health = f"{problem} ({failures}/{check.retries})"
                # Until its first healthy answer, a service gets a few seconds to come up.
                limit = check.retries if allocation.healthy else max(check.retries, _FIRST_TRIES)
                if failures >= limit:
                    allocation.healthy = False
                    allocation._unhealthy = problem
                    self._notify(self, allocation)
                    await execution.stop(_STOP_GRACE)
                    return
            await trio.sleep(check.interval if allocation.healthy else min(1.0, check.interval))

    def _set(
        self,
        allocation: HostedAllocation,
        state: str,
        *,
        reason: str | None = None,
        tell: bool = True,
    ) -> None:
        allocation.state = state
        if reason is not None:
            allocation.reason = reason
        if tell:
            self._notify(self, allocation)


def start_order(part: Ensemble, names: Sequence[str]) -> list[str]:
    """The node's allocations, each after those it depends on (the file's order otherwise)."""
    ordered: list[str] = []
    placed: set[str] = set()
    pending = list(names)
    while pending:
        ready = [n for n in pending if set(part.allocations[n].depends_on) <= placed]
        if not ready:  # a cycle: validation refuses them, so only a broken part gets here
            ready = pending[:1]
        for name in ready:
            ordered.append(name)
            placed.add(name)
            pending.remove(name)
    return ordered
