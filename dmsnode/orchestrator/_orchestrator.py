"""The orchestrator: deployments from bids to shutdown (DESIGN §3.4, docs/orchestration.md).

Each deployment is driven by one task in the orchestrator's nursery:

1. **Preparing**: ask for bids on every slot (node and redundant copy) and choose providers
   (:func:`~dmsnode.orchestrator.select`); every rejected bid's reason is kept in the manifest.
2. **Committing**: two-phase commit: ``/dms/deployment/commit`` on every chosen provider, then
   ``/dms/deployment/allocate`` on every one. Any failure reverts every commitment and allocation
   made, and the deployment goes back to bidding (without the provider that failed, for a round)
   until its deadline.
3. **Provisioning**: ``/dms/allocation/start`` in ``depends_on`` waves: an allocation starts once
   the services it depends on run (and are healthy, if they have a health check) and the tasks it
   depends on completed.
4. **Running**: supervised by status pushes and a liveness poll of every provider. A failed
   allocation (once its provider gave up restarting it) or a silent provider triggers the node's
   ``failure_recovery``: ``restart`` in place, ``redeploy`` elsewhere, ``stay_down`` (then the
   ensemble's ``escalation_strategy``: ``redeploy`` or ``teardown``; the default fails it).
5. **Completed** when every task ended well (or on shutdown), **Failed** with the reason
   otherwise; either way the allocations' logs are kept and everything is released.

The deployment is saved (state and manifest) before every step that makes a provider hold
something, so an orchestrator that restarts resumes it: deployments still being placed are
reverted and placed again, running ones are supervised again, and shutdowns are finished.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, final

import trio

from nuactor import Actor, ActorSystem, Context, Handle
from nuactor.errors import InvokeTimeout, NuactorError, Unreachable

from ..deployment import (
    Bid,
    BidRequest,
    Refusal,
    base_name,
    node_part,
    node_request,
    node_requests,
)
from ..ensemble import Allocation, Ensemble, EnsembleInvalid, parse, parse_data
from ..errors import BadRequest, DeploymentError, DmsError, UnknownDeployment
from ..store import Store
from ._collect import BidRound, ask_directly, candidates_of
from ._deployment import (
    TERMINAL,
    Deployment,
    DeploymentState,
    delete_row,
    load_logs,
    load_rows,
    row_of,
    save_logs,
    write_rows,
)
from ._selection import Rejection, select

__all__ = ["Orchestrator", "OrchestratorSettings"]

log = logging.getLogger("dmsnode.orchestrator")

S = DeploymentState
_ROOT: Final = "root"
#: Rejections and refusals kept in a manifest (the latest).
_KEEP_REASONS: Final = 200
#: Log lines kept per allocation once its provider lets go.
_KEEP_LOG_LINES: Final = 1000

Record = Callable[..., Awaitable[None]]
Peers = Callable[[], Sequence[tuple[str, bool]]]


@final
@dataclass(frozen=True, slots=True)
class OrchestratorSettings:
    """How this node orchestrates: see the ``orchestrator`` config section."""

    bid_requests: Literal["direct", "broadcast"] = "direct"
    bid_fanout: int = 4
    bid_timeout: float = 3.0
    bid_quorum: int = 3
    #: Each commit, allocate, start or revert call gets this long (seconds).
    step_timeout: float = 15.0
    #: A deployment not Running by then fails (seconds from its creation; ``dmsnode deploy
    #: --deadline``).
    deployment_timeout: float = 300.0
    liveness_interval: float = 5.0
    liveness_misses: int = 3
    #: Node restarts (in place) and redeploys (elsewhere) before the deployment fails.
    recovery_limit: int = 3
    retry_pause: float = 1.0


@final
class _Batch:
    """One group of deployment rows written in one transaction; waiters wait on ``done``."""

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()

    def check(self) -> None:
        if self.error is not None:
            raise DeploymentError(f"the deployment could not be saved: {self.error}")


class _Failed(Exception):
    """The deployment cannot go on: the reason."""


class _Retry(Exception):
    """This placement round failed (a commit or allocate was refused): bid again."""

    def __init__(self, reason: str, providers: set[str]) -> None:
        super().__init__(reason)
        self.providers = providers


@final
class Orchestrator:
    """Deploys ensembles onto providers and keeps them running."""

    def __init__(
        self,
        system: ActorSystem,
        store: Store,
        *,
        settings: OrchestratorSettings = OrchestratorSettings(),
        peers: Peers = lambda: (),
        rtt: Callable[[str], float | None] = lambda did: None,
        record: Record | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._system = system
        self._store = store
        self.settings = settings
        self._peers = peers
        self._rtt = rtt
        self._record = record
        self._rng = rng or random.Random()
        self.deployments: dict[str, Deployment] = {}
        self._rounds: dict[str, BidRound] = {}
        self._nursery: trio.Nursery | None = None
        self._pending: dict[str, tuple[Any, ...]] = {}
        self._batch = _Batch()
        self._flushing = False

    @property
    def did(self) -> str:
        return self._system.did

    def register(self, actor: Actor) -> None:
        """Add the orchestrator's behaviours to ``actor`` (the root)."""
        for name, handler in (
            ("new", self._on_new),
            ("list", self._on_list),
            ("status", self._on_status),
            ("manifest", self._on_manifest),
            ("info", self._on_info),
            ("logs", self._on_logs),
            ("shutdown", self._on_shutdown),
            ("prune", self._on_prune),
            ("delete", self._on_delete),
        ):
            actor.add_behaviour(f"/dms/node/deployment/{name}", handler, concurrent=True)
        actor.add_behaviour("/dms/deployment/bid", self._on_bid, concurrent=True)
        actor.add_behaviour("/dms/deployment/update", self._on_update, concurrent=True)
        actor.add_behaviour("/dms/deployment/confirm", self._on_confirm, concurrent=True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Resume the deployments in the store, then drive new ones until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for deployment in await self._store.read(load_rows):
                self.deployments[deployment.id] = deployment
                if deployment.state not in TERMINAL:
                    deployment.note("resumed after the orchestrator restarted")
                    log.info("resuming deployment %s (%s)", deployment.id, deployment.state.value)
                    nursery.start_soon(self._run, deployment, True)
            task_status.started()
            await trio.sleep_forever()

    # --- the operator's side -------------------------------------------------------------------

    async def deploy(self, ensemble: Ensemble, *, timeout: float | None = None) -> Deployment:
        """Create a deployment of ``ensemble`` (saved before this returns) and start driving it."""
        if self._nursery is None:
            raise DeploymentError("the orchestrator is not running")
        now = time.time()
        deployment = Deployment(
            id=new_id(),
            ensemble=ensemble,
            state=S.PREPARING,
            deadline=now + (timeout or self.settings.deployment_timeout),
            created_at=now,
            updated_at=now,
        )
        deployment.note("created")
        await self._save(deployment)
        self.deployments[deployment.id] = deployment
        await self._event("deployment.created", {"id": deployment.id})
        self._nursery.start_soon(self._run, deployment, False)
        return deployment

    def get(self, id: str) -> Deployment:
        deployment = self.deployments.get(id)
        if deployment is None:
            raise UnknownDeployment(f"no deployment {id!r} on this orchestrator")
        return deployment

    async def shutdown(self, id: str) -> Deployment:
        """Stop deployment ``id`` and release everything (returns once ShuttingDown is saved)."""
        deployment = self.get(id)
        if deployment.state in TERMINAL or deployment.state is S.SHUTTING_DOWN:
            return deployment
        await self._set(deployment, S.SHUTTING_DOWN, "shutdown requested")
        deployment.scope.cancel()
        return deployment

    async def wait(self, id: str, states: Sequence[DeploymentState]) -> Deployment:
        """Wait until deployment ``id`` is in one of ``states`` (or terminal)."""
        deployment = self.get(id)
        while deployment.state not in states and deployment.state not in TERMINAL:
            await deployment.changed.wait()
        return deployment

    # --- driving a deployment ------------------------------------------------------------------

    async def _run(self, deployment: Deployment, resumed: bool) -> None:
        """Drive one deployment to its end; nothing it raises reaches the orchestrator (the
        other deployments go on): a failure that cannot even be recorded is logged."""
        try:
            await self._drive(deployment, resumed)
        except Exception:
            log.critical(
                "deployment %s: its failure could not be recorded (it is resumed at the next"
                " start)",
                deployment.id,
                exc_info=True,
            )

    async def _drive(self, deployment: Deployment, resumed: bool) -> None:
        try:
            with deployment.scope:
                if deployment.state in (S.PREPARING, S.COMMITTING, S.PROVISIONING):
                    if resumed:
                        await self._revert_all(deployment, "placement restarted after a restart")
                    await self._deploy(deployment, list(_slots(deployment.ensemble)))
                    await self._set(deployment, S.RUNNING, "every allocation started")
                if deployment.state is S.RUNNING:
                    await self._supervise(deployment)
        except _Failed as failure:
            await self._fail(deployment, str(failure))
        except Exception as exc:  # a bug must not take the orchestrator down with it
            log.exception("deployment %s: unexpected error", deployment.id)
            await self._fail(deployment, f"internal error: {type(exc).__name__}: {exc}")
        if deployment.state is S.SHUTTING_DOWN:
            await self._finish(deployment, S.COMPLETED, "shut down on request")

    async def _deploy(
        self, deployment: Deployment, slots: list[str], avoid: set[str] | None = None
    ) -> None:
        """Place ``slots`` and start them; a provider lost on the way (it stops answering)
        means reverting them and placing them again, without it."""
        avoid = set(avoid or ())
        while True:
            await self._place(deployment, slots, avoid)
            try:
                await self._provision(deployment, slots)
                return
            except _Retry as retry:
                deployment.reason = str(retry)
                deployment.note(f"a provider was lost while starting, placing again: {retry}")
                await self._revert_slots(deployment, slots, "a provider was lost while starting")
                avoid = retry.providers

    async def _place(
        self, deployment: Deployment, slots: list[str], avoid: set[str] | None = None
    ) -> None:
        """Choose providers for ``slots`` and commit and allocate on all of them, again and
        again until it works or the deadline passes."""
        ensemble = deployment.ensemble
        avoid = set(avoid or ())
        asked: set[str] = set()
        kept: dict[tuple[str, str], Bid] = {}
        while True:
            left = deployment.deadline - time.time()
            if left <= 0:
                raise _Failed(
                    f"not placed by its deadline: {deployment.reason or 'no provider could take it'}"
                )
            if deployment.state is not S.RUNNING:
                await self._set(deployment, S.PREPARING, f"asking for bids on {', '.join(slots)}")
            requests = [node_request(ensemble, slot) for slot in slots]
            exclude = set(ensemble.exclude_peers) | avoid
            request = BidRequest(
                deployment=deployment.id,
                nonce=secrets.token_hex(8),
                orchestrator=self.did,
                nodes=tuple(requests),
                # Open for the whole round, whatever the deadline (the orchestrator's business).
                expires=time.time() + self.settings.bid_timeout + self.settings.step_timeout,
                exclude=tuple(sorted(exclude)),
            )
            bids = await self._collect(request, asked)
            asked |= bids.asked
            # Bids of earlier rounds still open count too: a round adds to what is known.
            for bid in bids.bids:
                kept[bid.provider, bid.node] = bid
            now = time.time()
            usable = [b for b in kept.values() if b.expires > now and b.provider not in avoid]
            rtts = {
                did: ms
                for did in {b.provider for b in usable}
                if (ms := self._rtt(did)) is not None
            }
            selection = select(
                requests,
                usable,
                now=time.time(),
                edges=ensemble.edge_constraints,
                exclude=exclude,
                rtt_ms=rtts,
                rng=self._rng,
            )
            self._keep_reasons(deployment, bids.refusals, selection.rejections, len(bids.bids))
            if not selection.complete:
                why = _unplaced(selection.unplaced, bids.refusals)
                deployment.reason = f"no placement yet ({why})"
                deployment.note(deployment.reason)
                deployment.touch()
                avoid = set()
                if bids.exhausted:  # everyone was asked: give the network a moment
                    await trio.sleep(
                        min(self.settings.retry_pause, max(0.0, deployment.deadline - time.time()))
                    )
                continue
            try:
                await self._commit(deployment, dict(selection.placement))
            except _Retry as retry:
                deployment.reason = str(retry)
                deployment.note(f"placement failed, bidding again: {retry}")
                deployment.touch()
                avoid = retry.providers
                continue
            deployment.reason = ""
            return

    async def _collect(self, request: BidRequest, asked: set[str]) -> BidRound:
        bids = BidRound(request)
        settings = self.settings
        if settings.bid_requests == "direct":
            await ask_directly(
                self._system,
                bids,
                candidates_of(self._peers),
                # Every node needs a provider of its own: ask enough to have a choice.
                fanout=max(settings.bid_fanout, 2 * len(request.nodes)),
                timeout=settings.bid_timeout,
                rng=self._rng,
                avoid=asked,
            )
            return bids
        self._rounds[request.nonce] = bids
        try:
            await self._system.broadcast(
                "/nunet/deployment", "/dms/deployment/request", request.to_dict()
            )
            with trio.move_on_after(settings.bid_timeout):
                while not bids.quorum(request.nodes, settings.bid_quorum):
                    await bids.arrived.wait()
        finally:
            del self._rounds[request.nonce]
        return bids

    async def _commit(self, deployment: Deployment, placement: dict[str, Bid]) -> None:
        """Two-phase commit of ``placement``: all commit, then all allocate; on any failure
        everything made is reverted and :class:`_Retry` raised."""
        for slot, bid in placement.items():
            deployment.nodes[slot] = {
                "provider": bid.provider,
                "state": "committing",
                "bid": _bid_record(bid),
                "allocations": {},
                "ports": [],
                "order": [],
                "recoveries": deployment.nodes.get(slot, {}).get("recoveries", 0),
            }
        if deployment.state is not S.RUNNING:
            await self._set(deployment, S.COMMITTING, f"committing on {len(placement)} provider(s)")
        else:
            await self._save(deployment)
        failed: dict[str, str] = {}

        async def step(slot: str, beh: str, body: dict[str, Any], state: str) -> None:
            provider = placement[slot].provider
            try:
                answer = await self._invoke(provider, beh, body)
            except (NuactorError, DmsError, OSError) as exc:
                failed[slot] = f"{beh.rsplit('/', 1)[1]} on {_short(provider)} failed: {_why(exc)}"
                return
            node = deployment.nodes[slot]
            node["state"] = state
            if state == "allocated" and isinstance(answer, dict):
                node["allocations"] = dict(answer.get("allocations") or {})
                node["ports"] = list(answer.get("ports") or [])
                node["order"] = list(answer.get("order") or [])

        for beh, state in (
            ("/dms/deployment/commit", "committed"),
            ("/dms/deployment/allocate", "allocated"),
        ):
            # A step under way is not abandoned (each is bounded by step_timeout): a shutdown
            # that cut it short could send its revert before the provider even committed.
            with trio.CancelScope(shield=True):
                async with trio.open_nursery() as nursery:
                    for slot in placement:
                        body: dict[str, Any] = {"deployment": deployment.id, "node": slot}
                        if state == "committed":
                            body["ensemble"] = node_part(deployment.ensemble, base_name(slot))
                        nursery.start_soon(step, slot, beh, body, state)
            await trio.lowlevel.checkpoint_if_cancelled()
            if failed:
                await self._revert_slots(deployment, list(placement), "two-phase commit failed")
                providers = {placement[s].provider for s in failed}
                raise _Retry("; ".join(failed.values()), providers)
            deployment.touch()  # nothing more to save: a resumed placement reverts them all

    async def _provision(self, deployment: Deployment, slots: list[str]) -> None:
        """Start the allocations of ``slots`` in depends_on waves; wait until all started."""
        if deployment.state is not S.RUNNING:
            await self._set(deployment, S.PROVISIONING, "starting allocations")
        waves = _waves(deployment.ensemble, slots)
        for index, wave in enumerate(waves):
            failures = await self._start_wave(deployment, wave)
            if failures:
                raise _Failed("; ".join(failures))
            deployment.touch()
            last = index == len(waves) - 1
            await self._await_wave(deployment, wave, ready=not last)

    async def _start_wave(self, deployment: Deployment, wave: list[tuple[str, str]]) -> list[str]:
        """``/dms/allocation/start`` on every allocation of ``wave`` at once; what failed.
        Raises :class:`_Retry` if a provider could not be reached (placed again elsewhere)."""
        failures: list[str] = []
        lost: dict[str, str] = {}

        async def start(slot: str, name: str) -> None:
            node = deployment.nodes[slot]
            actor = node["allocations"][name]["actor"]
            try:
                answer = await self._invoke(
                    node["provider"], "/dms/allocation/start", {}, actor=actor
                )
            except (Unreachable, InvokeTimeout, OSError) as exc:
                lost[node["provider"]] = f"{slot}/{name} could not be started: {_why(exc)}"
                return
            except (NuactorError, DmsError) as exc:
                failures.append(f"{slot}/{name} did not start: {_why(exc)}")
                return
            if isinstance(answer, dict):
                _merge(node["allocations"][name], answer)

        async with trio.open_nursery() as nursery:
            for slot, name in wave:
                nursery.start_soon(start, slot, name)
        if lost and not failures:
            raise _Retry("; ".join(lost.values()), set(lost))
        return failures + list(lost.values())

    async def _await_wave(
        self, deployment: Deployment, wave: list[tuple[str, str]], *, ready: bool
    ) -> None:
        """Wait until every allocation of ``wave`` started (``ready``: can be depended on)."""
        while True:
            waiting = []
            for slot, name in wave:
                status = deployment.nodes[slot]["allocations"][name]
                problem = _failure(status, deployment.ensemble.allocations[name])
                if problem is not None:
                    raise _Failed(f"{slot}/{name} {problem}")
                spec = deployment.ensemble.allocations[name]
                if not (_is_ready(status, spec) if ready else _is_up(status, spec)):
                    waiting.append(f"{slot}/{name}")
            if not waiting:
                return
            if time.time() > deployment.deadline:
                raise _Failed(
                    f"not started by its deadline: still waiting for {', '.join(waiting)}"
                )
            with trio.move_on_after(min(1.0, self.settings.liveness_interval)):
                await deployment.changed.wait()
                continue
            await self._poll(deployment)  # no news for a second: ask

    async def _supervise(self, deployment: Deployment) -> None:
        """Watch a running deployment until it completes or fails; apply failure recovery."""
        misses: dict[str, int] = {}
        next_poll = trio.current_time()
        while True:
            verdict = self._verdict(deployment, misses)
            if verdict == "completed":
                await self._finish(deployment, S.COMPLETED, "every task completed")
                return
            if verdict is not None:
                slot, problem = verdict
                await self._recover(deployment, slot, problem)
                misses.pop(slot, None)
                continue
            with trio.move_on_at(next_poll):
                await deployment.changed.wait()
                continue
            next_poll = trio.current_time() + self.settings.liveness_interval
            for slot, reached in (await self._poll(deployment)).items():
                misses[slot] = 0 if reached else misses.get(slot, 0) + 1

    def _verdict(
        self, deployment: Deployment, misses: Mapping[str, int]
    ) -> Literal["completed"] | tuple[str, str] | None:
        """What supervision must do now: nothing, complete, or recover a slot (and why)."""
        statuses = [a for n in deployment.nodes.values() for a in n["allocations"].values()]
        if statuses and all(a.get("state") == "completed" for a in statuses):
            return "completed"
        for slot, node in deployment.nodes.items():
            if misses.get(slot, 0) >= self.settings.liveness_misses:
                return slot, f"{slot}: provider {_short(node['provider'])} stopped answering"
            for name, status in node["allocations"].items():
                problem = _failure(status, deployment.ensemble.allocations[name])
                if problem is not None:
                    return slot, f"{slot}/{name} {problem}"
        return None

    async def _recover(self, deployment: Deployment, slot: str, problem: str) -> None:
        """Apply the node's failure_recovery (then the escalation strategy) to ``slot``."""
        ensemble = deployment.ensemble
        node = deployment.nodes[slot]
        strategy = ensemble.nodes[base_name(slot)].failure_recovery
        if strategy == "stay_down":
            escalation = ensemble.escalation_strategy
            if escalation != "redeploy":
                raise _Failed(f"{problem} (failure_recovery: stay_down)")
            strategy = "redeploy"
        recoveries = int(node.get("recoveries", 0))
        if recoveries >= self.settings.recovery_limit:
            raise _Failed(f"{problem} (gave up after {recoveries} recoveries)")
        node["recoveries"] = recoveries + 1
        deployment.note(f"{problem}: {strategy}")
        await self._event(
            "deployment.recovery",
            {"id": deployment.id, "node": slot, "problem": problem, "action": strategy},
        )
        if strategy == "restart":
            try:
                for name in node["order"] or list(node["allocations"]):
                    answer = await self._invoke(
                        node["provider"],
                        "/dms/allocation/restart",
                        {},
                        actor=node["allocations"][name]["actor"],
                    )
                    if isinstance(answer, dict):
                        _merge(node["allocations"][name], answer)
                await self._save(deployment)
                return
            except (NuactorError, DmsError, OSError) as exc:
                if ensemble.escalation_strategy != "redeploy":
                    raise _Failed(f"{problem}; restart failed: {_why(exc)}") from None
        old = node["provider"]
        await self._revert_slots(deployment, [slot], f"redeploying {slot}")
        await self._deploy(deployment, [slot], avoid={old})
        deployment.nodes[slot]["recoveries"] = recoveries + 1
        deployment.note(f"{slot} redeployed on {_short(deployment.nodes[slot]['provider'])}")
        await self._save(deployment)

    async def _poll(self, deployment: Deployment) -> dict[str, bool]:
        """Ask every provider of the deployment for its status; which slots were reached."""
        by_provider: dict[str, list[str]] = {}
        for slot, node in deployment.nodes.items():
            if node.get("provider") and node.get("state") == "allocated":
                by_provider.setdefault(node["provider"], []).append(slot)
        reached: dict[str, bool] = {}

        async def ask(provider: str, slots: list[str]) -> None:
            try:
                answer = await self._invoke(
                    provider,
                    "/dms/deployment/status",
                    {"deployment": deployment.id},
                    timeout=min(self.settings.step_timeout, self.settings.liveness_interval),
                )
            except (NuactorError, DmsError, OSError):
                for slot in slots:
                    reached[slot] = False
                return
            nodes = answer.get("nodes", {}) if isinstance(answer, dict) else {}
            for slot in slots:
                here = nodes.get(slot)
                reached[slot] = True
                if not isinstance(here, dict):
                    for status in deployment.nodes[slot]["allocations"].values():
                        if status.get("state") not in ("failed", "completed"):
                            status["state"] = "failed"
                            status["reason"] = "its provider no longer hosts it"
                            status["gave_up"] = True
                    continue
                for name, status in (here.get("allocations") or {}).items():
                    mine = deployment.nodes[slot]["allocations"].get(name)
                    if mine is not None and isinstance(status, dict):
                        _merge(mine, status)

        async with trio.open_nursery() as nursery:
            for provider, slots in by_provider.items():
                nursery.start_soon(ask, provider, slots)
        deployment.touch()
        return reached

    # --- ending --------------------------------------------------------------------------------

    async def _fail(self, deployment: Deployment, reason: str) -> None:
        log.warning("deployment %s failed: %s", deployment.id, reason)
        await self._finish(deployment, S.FAILED, reason)

    async def _finish(self, deployment: Deployment, state: DeploymentState, reason: str) -> None:
        """Keep the logs, revert everything, and end in ``state``."""
        with trio.CancelScope(shield=True):
            deployment.reason = reason
            await self._save(deployment)
            await self._keep_logs(deployment)
            await self._revert_all(deployment, reason)
            await self._set(deployment, state, reason)

    async def _keep_logs(self, deployment: Deployment) -> None:
        fetched = await self._fetch_logs(deployment, limit=_KEEP_LOG_LINES)
        if not fetched:
            return

        def save(conn: Any) -> None:
            for allocation, lines in fetched.items():
                save_logs(conn, deployment.id, allocation, lines)

        await self._store.write(save)

    async def _fetch_logs(
        self, deployment: Deployment, *, limit: int
    ) -> dict[str, list[dict[str, Any]]]:
        """Every allocation's output, asked of its provider (``slot/allocation`` -> lines)."""
        fetched: dict[str, list[dict[str, Any]]] = {}

        async def fetch(slot: str, name: str, provider: str, actor: str) -> None:
            try:
                lines = await self._invoke(
                    provider,
                    "/dms/allocation/logs",
                    {"limit": limit},
                    actor=actor,
                    timeout=min(5.0, self.settings.step_timeout),
                )
            except (NuactorError, DmsError, OSError) as exc:
                log.info("logs of %s/%s/%s not fetched: %s", deployment.id, slot, name, exc)
                return
            if isinstance(lines, list):
                fetched[f"{slot}/{name}"] = [line for line in lines if isinstance(line, dict)]

        async with trio.open_nursery() as nursery:
            for slot, node in deployment.nodes.items():
                if node.get("state") != "allocated":
                    continue
                for name, status in node["allocations"].items():
                    nursery.start_soon(fetch, slot, name, node["provider"], status["actor"])
        return fetched

    async def _revert_all(self, deployment: Deployment, why: str) -> None:
        await self._revert_slots(deployment, list(deployment.nodes), why)

    async def _revert_slots(self, deployment: Deployment, slots: list[str], why: str) -> None:
        """Tell the providers of ``slots`` to let go (best effort: a provider that cannot be
        reached lets a commitment expire, and reverts an allocation it hears no more about)."""

        async def revert(slot: str) -> None:
            node = deployment.nodes.get(slot)
            if node is None or not node.get("provider"):
                return
            try:
                await self._invoke(
                    node["provider"],
                    "/dms/deployment/revert",
                    {"deployment": deployment.id, "node": slot},
                    timeout=min(5.0, self.settings.step_timeout),
                )
            except (NuactorError, DmsError, OSError) as exc:
                log.info("revert of %s/%s on %s: %s", deployment.id, slot, node["provider"], exc)
                node["unreverted"] = f"{_why(exc)}"
            node["reached"], node["state"] = node.get("state"), "reverted"

        with trio.CancelScope(shield=True):
            async with trio.open_nursery() as nursery:
                for slot in slots:
                    nursery.start_soon(revert, slot)
            for slot in slots:
                node = deployment.nodes.pop(slot, None)
                if node is not None and node.get("provider"):
                    deployment.placed(slot, node, why)
            deployment.note(f"reverted {', '.join(slots) or 'nothing'}: {why}")
            await self._save(deployment)

    # --- behaviours: providers -----------------------------------------------------------------

    async def _on_bid(self, ctx: Context, body: Any) -> None:
        """A provider's answer to a broadcast request (``{deployment, nonce, bids, refusals}``),
        added to its round; one that comes after its round closed is logged."""
        nonce = body.get("nonce") if isinstance(body, dict) else None
        round_ = self._rounds.get(nonce) if isinstance(nonce, str) else None
        if round_ is None:
            log.info("an answer to a bid request from %s came after its round closed", ctx.sender)
            return
        round_.add(body, ctx.sender)

    async def _on_update(self, ctx: Context, body: Any) -> None:
        """A provider's status push about one allocation."""
        if not isinstance(body, dict):
            raise BadRequest("a status update is a map")
        deployment = self.deployments.get(str(body.get("deployment")))
        slot, status = body.get("node"), body.get("allocation")
        if deployment is None or not isinstance(slot, str) or not isinstance(status, dict):
            raise UnknownDeployment(f"no deployment {body.get('deployment')!r} here")
        node = deployment.nodes.get(slot)
        if node is None or node.get("provider") != ctx.sender:
            raise DeploymentError(f"{ctx.sender} does not host {slot} of {deployment.id}")
        mine = node["allocations"].get(status.get("name"))
        if mine is None:
            return
        _merge(mine, status)
        deployment.touch()  # not saved: a resumed deployment asks its providers again

    async def _on_confirm(self, ctx: Context, body: Any) -> dict[str, Any]:
        """A provider back from a restart asks whether it should keep a node."""
        if not isinstance(body, dict):
            raise BadRequest("the body must be a map with 'deployment' and 'node'")
        deployment = self.deployments.get(str(body.get("deployment")))
        keep = (
            deployment is not None
            and deployment.state not in TERMINAL
            and (deployment.nodes.get(str(body.get("node"))) or {}).get("provider") == ctx.sender
        )
        return {"keep": keep}

    # --- behaviours: the operator --------------------------------------------------------------

    async def _on_new(self, ctx: Context, body: Any) -> dict[str, Any]:
        """Deploy an ensemble: ``{ensemble: YAML text or plain data, timeout?: seconds}``."""
        if not isinstance(body, dict) or "ensemble" not in body:
            raise BadRequest("the body must be a map with 'ensemble' (YAML text or a map)")
        source = body["ensemble"]
        try:
            ensemble = parse(source) if isinstance(source, str | bytes) else parse_data(source)
        except EnsembleInvalid as exc:
            raise BadRequest(str(exc)) from None
        timeout = body.get("timeout")
        if timeout is not None and (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise BadRequest("'timeout' must be a positive number of seconds")
        deployment = await self.deploy(ensemble, timeout=timeout)
        return deployment.summary()

    async def _on_list(self, ctx: Context, body: Any) -> list[dict[str, Any]]:
        return [d.summary() for d in self.deployments.values()]

    async def _on_status(self, ctx: Context, body: Any) -> dict[str, Any]:
        deployment = self.get(_id(body))
        return deployment.summary() | {
            "nodes": {
                slot: {
                    "provider": node.get("provider"),
                    "state": node.get("state"),
                    "ports": node.get("ports", []),
                    "allocations": {
                        name: {
                            k: status.get(k)
                            for k in ("state", "exit_code", "reason", "healthy", "restarts")
                        }
                        for name, status in node.get("allocations", {}).items()
                    },
                }
                for slot, node in deployment.nodes.items()
            },
            "bids": deployment.manifest.get("bids", 0),
            "placements": deployment.manifest.get("placements", [])[-20:],
            "history": deployment.manifest.get("history", [])[-20:],
        }

    async def _on_manifest(self, ctx: Context, body: Any) -> dict[str, Any]:
        deployment = self.get(_id(body))
        return {"id": deployment.id, "state": deployment.state.value, **deployment.manifest}

    async def _on_info(self, ctx: Context, body: Any) -> dict[str, Any]:
        deployment = self.get(_id(body))
        return deployment.summary() | {"ensemble": deployment.ensemble.to_dict()}

    async def _on_logs(self, ctx: Context, body: Any) -> dict[str, Any]:
        """Every allocation's output: asked of the providers while they hold it, else as kept."""
        deployment = self.get(_id(body))
        live = await self._fetch_logs(deployment, limit=_KEEP_LOG_LINES)
        kept = await self._store.read(lambda conn: load_logs(conn, deployment.id))
        return {"id": deployment.id, "state": deployment.state.value, "logs": kept | live}

    async def _on_shutdown(self, ctx: Context, body: Any) -> dict[str, Any]:
        deployment = await self.shutdown(_id(body))
        return deployment.summary()

    async def _on_prune(self, ctx: Context, body: Any) -> dict[str, Any]:
        """Delete every Completed or Failed deployment (and its kept logs)."""
        pruned = [d.id for d in self.deployments.values() if d.state in TERMINAL]
        for id in pruned:
            await self._delete(id)
        return {"pruned": pruned}

    async def _on_delete(self, ctx: Context, body: Any) -> dict[str, Any]:
        deployment = self.get(_id(body))
        if deployment.state not in TERMINAL:
            raise DeploymentError(
                f"deployment {deployment.id} is {deployment.state.value}: shut it down first"
            )
        await self._delete(deployment.id)
        return {"deleted": deployment.id}

    async def _delete(self, id: str) -> None:
        await self._store.write(lambda conn: delete_row(conn, id))
        self.deployments.pop(id, None)

    # --- plumbing ------------------------------------------------------------------------------

    async def _invoke(
        self,
        provider: str,
        beh: str,
        body: Any,
        *,
        actor: str = _ROOT,
        timeout: float | None = None,
    ) -> Any:
        return await self._system.invoke(
            Handle(provider, actor), beh, body, timeout=timeout or self.settings.step_timeout
        )

    async def _set(self, deployment: Deployment, state: DeploymentState, text: str) -> None:
        """Move to ``state``: saved first, then visible (in memory, to waiters, as an event)."""
        if deployment.state is state:
            deployment.touch()
            return
        deployment.note(text, state=state)
        await self._save(deployment, state=state)
        await self._event(
            "deployment.state", {"id": deployment.id, "state": state.value, "why": text}
        )

    async def _save(self, deployment: Deployment, *, state: DeploymentState | None = None) -> None:
        """Write the deployment (in ``state``, if given), then make that visible and wake
        whoever waits on it: what anyone sees of a deployment's state is on disk.

        Writes are grouped: while one is under way, the saves asked meanwhile wait and go in the
        next transaction together (the latest of each deployment), which the first caller
        writes too. Under many concurrent deployments that is one transaction for many."""
        deployment.updated_at = time.time()
        self._pending[deployment.id] = row_of(deployment, state)
        batch = self._batch
        with trio.CancelScope(shield=True):
            if self._flushing:
                await batch.done.wait()
                batch.check()
            else:
                await self._flush()
        if state is not None:
            deployment.state = state
        deployment.touch()

    async def _flush(self) -> None:
        """Write the pending rows; if more came meanwhile, a task of the orchestrator writes
        those (so that no caller waits on other deployments' batches for long)."""
        self._flushing = True
        rows, self._pending = list(self._pending.values()), {}
        batch, self._batch = self._batch, _Batch()
        try:
            await self._store.write(functools.partial(write_rows, rows=rows))
        except BaseException as exc:
            # Neither these rows nor those pending were written: every waiter is told.
            batch.fail(exc)
            self._batch.fail(exc)
            self._pending, self._batch = {}, _Batch()
            self._flushing = False
            raise
        batch.done.set()
        if self._pending and self._nursery is not None:
            self._nursery.start_soon(self._flush_rest)
        elif self._pending:  # not running (a test driving it by hand): write them here
            await self._flush()
        else:
            self._flushing = False

    async def _flush_rest(self) -> None:
        try:
            await self._flush()
        except Exception as exc:  # its waiters were told; the orchestrator goes on
            log.error("deployments could not be saved: %s", exc)

    def _keep_reasons(
        self,
        deployment: Deployment,
        refusals: Sequence[Refusal],
        rejections: Sequence[Rejection],
        bids: int,
    ) -> None:
        """Keep every provider's latest reason per node (across rounds: a later round asks
        other providers), the newest at the end, at most :data:`_KEEP_REASONS` of each."""
        manifest = deployment.manifest
        manifest["bids"] = manifest.get("bids", 0) + bids
        for key, fresh in (
            ("refusals", [r.to_dict() for r in refusals]),
            (
                "rejections",
                [{"provider": r.provider, "node": r.node, "reason": r.reason} for r in rejections],
            ),
        ):
            kept = {(r["provider"], r["node"]): r for r in manifest.get(key, [])}
            for reason in fresh:
                kept.pop((reason["provider"], reason["node"]), None)
                kept[reason["provider"], reason["node"]] = reason
            manifest[key] = list(kept.values())[-_KEEP_REASONS:]

    async def _event(self, kind: str, data: dict[str, Any]) -> None:
        if self._record is not None:
            await self._record(kind, data)


def new_id() -> str:
    """A fresh deployment id (random: ids are not guessable and never collide)."""
    return "d" + secrets.token_hex(8)


def _id(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise BadRequest("the body must be a map with the deployment's 'id'")
    return str(body["id"])


def _slots(ensemble: Ensemble) -> list[str]:
    return [request.node for request in node_requests(ensemble)]


def _waves(ensemble: Ensemble, slots: Sequence[str]) -> list[list[tuple[str, str]]]:
    """``(slot, allocation)`` pairs grouped so that each depends only on earlier groups."""
    level: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in level:
            level[name] = 0  # a cycle (validation refuses them) cannot recurse forever
            deps = ensemble.allocations[name].depends_on
            level[name] = 1 + max((depth(d) for d in deps), default=-1)
        return level[name]

    waves: dict[int, list[tuple[str, str]]] = {}
    for slot in slots:
        for name in ensemble.nodes[base_name(slot)].allocations:
            waves.setdefault(depth(name), []).append((slot, name))
    return [waves[k] for k in sorted(waves)]


def _merge(mine: dict[str, Any], status: Mapping[str, Any]) -> None:
    """Update a manifest allocation with a provider's snapshot (keeping its actor name)."""
    for key in (
        "state",
        "exit_code",
        "reason",
        "healthy",
        "health",
        "restarts",
        "gave_up",
        "started_at",
        "finished_at",
        "type",
    ):
        if key in status:
            mine[key] = status[key]


def _failure(status: Mapping[str, Any], spec: Allocation) -> str | None:
    """Why an allocation counts as failed for the orchestrator: failed, and its provider will
    not restart it (it gave up, or the allocation's failure_recovery is stay_down)."""
    if status.get("state") != "failed":
        return None
    if not status.get("gave_up") and spec.failure_recovery != "stay_down":
        return None  # its provider restarts it
    detail = str(status.get("reason") or "failed")
    code = status.get("exit_code")
    if code is not None and f"code {code}" not in detail:
        detail += f" (exit code {code})"
    return f"failed: {detail}"


def _is_up(status: Mapping[str, Any], spec: Allocation) -> bool:
    """Whether an allocation counts as started: a task running or done; a service running
    and, if it has a health check that can run, healthy."""
    if spec.type == "task":
        return status.get("state") in ("running", "completed")
    return status.get("state") == "running" and _healthy(status, spec)


def _is_ready(status: Mapping[str, Any], spec: Allocation) -> bool:
    """Whether allocations that depend on this one may start: a task completed; a service up."""
    if spec.type == "task":
        return bool(status.get("state") == "completed")
    return _is_up(status, spec)


def _healthy(status: Mapping[str, Any], spec: Allocation) -> bool:
    if spec.healthcheck is None:
        return True
    unsupported = "not supported" in str(status.get("health", ""))
    return status.get("healthy") is True or (status.get("healthy") is None and unsupported)


def _unplaced(unplaced: Mapping[str, str], refusals: Sequence[Refusal]) -> str:
    """Why slots found no provider: the selection's reason, with the providers' own reasons
    for not bidding (the most common first, counted)."""
    parts = []
    for slot, reason in unplaced.items():
        counts: dict[str, int] = {}
        for refusal in refusals:
            if refusal.node in (slot, "*"):
                counts[refusal.reason] = counts.get(refusal.reason, 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:3]
        said = "; ".join(f"{text}" + (f" (x{n})" if n > 1 else "") for text, n in top)
        parts.append(f"{slot}: {reason}" + (f"; providers said: {said}" if said else ""))
    return "; ".join(parts)


def _bid_record(bid: Bid) -> dict[str, Any]:
    data = bid.to_dict()
    data["signature"] = bid.signature.hex()
    return data


def _short(did: str) -> str:
    return did[:16] + "…" + did[-6:] if len(did) > 28 else did


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
