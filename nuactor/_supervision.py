"""Supervision trees, as in OTP: strategies, restart intensity, back-off and escalation.

Every actor supervises its children. When a child crashes (its ``started`` or ``run`` raised),
the supervisor restarts it, or it and its siblings, per its :class:`Strategy`, after a back-off.
More than ``max_restarts`` restarts within ``within`` seconds and the supervisor gives up: it
raises :class:`~nuactor.errors.ActorCrashed`, which crashes the supervising actor itself and so
escalates to *its* supervisor. Past the system's root, the :class:`ActorSystem` block raises.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

import trio

from .errors import ActorCrashed

if TYPE_CHECKING:
    from ._actor import Actor
    from ._cell import Cell
    from ._envelope import Handle
    from ._system import ActorSystem

__all__ = ["Restart", "Strategy", "Supervision"]

log = logging.getLogger("nuactor.supervision")


class Strategy(enum.Enum):
    """Which children restart when one crashes."""

    #: Only the crashed child.
    ONE_FOR_ONE = "one_for_one"
    #: Every child: the others are stopped, then all restart in start order.
    ONE_FOR_ALL = "one_for_all"
    #: The crashed child and every child started after it.
    REST_FOR_ONE = "rest_for_one"


class Restart(enum.Enum):
    """Whether a child is restarted."""

    #: After a crash (the default).
    PERMANENT = "permanent"
    #: Never: a crashed temporary child is removed.
    TEMPORARY = "temporary"


@final
@dataclass(frozen=True, slots=True)
class Supervision:
    """A supervisor's policy: strategy, restart intensity and back-off (seconds)."""

    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    within: float = 5.0
    backoff_initial: float = 0.05
    backoff_max: float = 2.0

    def backoff(self, recent_restarts: int) -> float:
        """The delay before a restart, doubling with each restart in the current window."""
        return float(
            min(self.backoff_max, self.backoff_initial * 2.0 ** max(0, recent_restarts - 1))
        )


def root_cause(error: BaseException) -> BaseException:
    """The one exception inside nested single-member groups (how Trio nurseries wrap errors)."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@dataclass(slots=True)
class _Exit:
    cell: Cell
    generation: int
    error: BaseException | None


@final
class Supervisor:
    """The children of one actor (or of the system), and the task that restarts them."""

    def __init__(self, system: ActorSystem, owner: str, policy: Supervision) -> None:
        self._system = system
        self._owner = owner
        self._policy = policy
        self.children: list[Cell] = []
        self._restarts: deque[float] = deque()
        self._exits_send, self._exits = trio.open_memory_channel[_Exit](math.inf)
        self._nursery: trio.Nursery | None = None

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the children's tasks; apply the strategy to each crash until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                async for event in self._exits:
                    await self._on_exit(event)
        finally:
            self._nursery = None
            for child in self.children:
                self._system._unregister(child)
            self.children.clear()

    async def start_child(
        self, actor: Actor | Callable[[], Actor], *, name: str | None, restart: Restart
    ) -> Handle:
        """Register and start a child; returns once its ``started`` hook has run."""
        if self._nursery is None:
            raise RuntimeError(f"the supervisor of {self._owner!r} is not running")
        cell = self._system._register(actor, name=name, restart=restart, parent=self._owner)
        self.children.append(cell)
        try:
            await self._nursery.start(self._run_instance, cell)
        except BaseException:
            self.children.remove(cell)
            self._system._unregister(cell)
            raise
        return cell.handle

    async def stop_child(self, cell: Cell) -> None:
        """Stop a child for good (no restart) and wait until it has stopped."""
        if cell in self.children:
            self.children.remove(cell)
        await cell.stop()
        self._system._unregister(cell)

    async def _run_instance(self, cell: Cell, *, task_status: trio.TaskStatus[None]) -> None:
        generation = cell.generation
        try:
            await cell.run_instance(task_status=task_status)
        except Exception as exc:
            if not cell.has_started:
                # A failed start is the spawner's error, not a crash: raise it as itself.
                cause = root_cause(exc)
                if cause is exc or isinstance(cause, BaseExceptionGroup):
                    raise
                raise cause from None
            self._exits_send.send_nowait(_Exit(cell, generation, exc))
        except BaseExceptionGroup as group:
            # Cancelled while crashing: the stop wins, the crash is only worth a log line.
            cancelled, errors = group.split(trio.Cancelled)
            if errors is not None:
                log.warning("actor %r failed while stopping: %r", cell.name, root_cause(errors))
            if cancelled is not None:
                raise cancelled from None
        else:
            self._exits_send.send_nowait(_Exit(cell, generation, None))

    async def _on_exit(self, event: _Exit) -> None:
        cell = event.cell
        if event.generation != cell.generation or cell not in self.children:
            return  # a stale report, or a child stopped on purpose
        if event.error is None:
            return  # stopped by a restart of its siblings or by stop_child
        log.warning("actor %r crashed: %r", cell.name, root_cause(event.error))
        self._system.counters["actor_crashes"] += 1
        if cell.restart is Restart.TEMPORARY:
            self.children.remove(cell)
            self._system._unregister(cell)
            return
        await self._restart_after(cell, event.error)

    async def _restart_after(self, crashed: Cell, error: BaseException) -> None:
        while True:
            now = trio.current_time()
            while self._restarts and self._restarts[0] < now - self._policy.within:
                self._restarts.popleft()
            if len(self._restarts) >= self._policy.max_restarts:
                raise ActorCrashed(
                    f"actor {crashed.name!r} crashed more than {self._policy.max_restarts} "
                    f"times in {self._policy.within} s; escalating past {self._owner!r}: "
                    f"{root_cause(error)!r}"
                ) from error
            self._restarts.append(now)
            affected = self._affected(crashed)
            for cell in reversed(affected):
                if cell is not crashed:
                    await cell.stop()
            await trio.sleep(self._policy.backoff(len(self._restarts)))
            failed = await self._start_in_order(affected)
            if failed is None:
                return
            crashed, error = failed

    def _affected(self, crashed: Cell) -> list[Cell]:
        strategy = self._policy.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return [crashed]
        if strategy is Strategy.ONE_FOR_ALL:
            return list(self.children)
        return self.children[self.children.index(crashed) :]

    async def _start_in_order(self, cells: list[Cell]) -> tuple[Cell, BaseException] | None:
        assert self._nursery is not None
        for cell in cells:
            cell.generation += 1
            try:
                await self._nursery.start(self._run_instance, cell)
            except Exception as exc:
                return cell, exc
        return None

    def describe(self) -> list[dict[str, Any]]:
        """The children, for inspection and tests."""
        return [{"name": c.name, "generation": c.generation} for c in self.children]
