"""The provider side of deployments: bid, commit, allocate, start, report, revert.

Behaviours (on the node's root actor; docs/orchestration.md has the whole protocol):

- ``/dms/deployment/request``: a :class:`~dmsnode.deployment.BidRequest`, direct or from the
  ``/nunet/deployment`` topic; answers (or, for a broadcast, sends to the orchestrator's
  ``/dms/deployment/bid``) a signed bid per node it can host and a stated refusal for the rest.
- ``/dms/deployment/commit``: the node's part of the ensemble; re-checked, then committed in
  the ledger for ``commit_ttl`` seconds.
- ``/dms/deployment/allocate``: the commitment becomes an allocation; one actor per allocation
  (``/dms/allocation/start|restart|stop|status|logs``) is spawned.
- ``/dms/deployment/revert``: stop, clean up and release everything of a deployment (idempotent).
- ``/dms/deployment/status``: the deployment's allocations here (the orchestrator's liveness poll).

Only the orchestrator that committed a node may act on it afterwards. Every state change of an
allocation is pushed to the orchestrator (``/dms/deployment/update``). What is hosted is kept in
the store, so a restarted provider finds its executions again (``Executor.recover``) and asks the
orchestrator whether it still wants them; a node no orchestrator has asked about for
``orphan_timeout`` seconds is reverted by the provider itself, so nothing is held forever.
"""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, final

import trio

from nuactor import Actor, ActorSystem, Context, Handle, Restart
from nuactor.errors import NuactorError

from ..deployment import Bid, BidRequest, Refusal, base_name, node_request, read_part
from ..ensemble import Ensemble, Location
from ..errors import (
    BadRequest,
    DeploymentRefused,
    DmsError,
    LedgerError,
    UnknownDeployment,
)
from ..executors import Availability, Execution, Executor
from ..resources import Allocation, Ledger, LedgerState, Resources
from ..store import Store
from ._assess import Host, assess, choose_gpus
from ._hosted import HostedAllocation, HostedNode
from ._specs import execution_spec, hosted_id, port_mappings

__all__ = ["DEPLOYMENT_TOPIC", "Provider", "ProviderSettings"]

log = logging.getLogger("dmsnode.provider")

#: The topic bid requests are broadcast on.
DEPLOYMENT_TOPIC: Final = "/nunet/deployment"
#: How old a view of the ledger bids may use (seconds).
_SNAPSHOT_SECONDS: Final = 0.25
#: How often (at most) hosted nodes are checked for an orchestrator that went silent.
_ORPHAN_CHECK_SECONDS: Final = 10.0
_ROOT: Final = "root"

Record = Callable[..., Awaitable[None]]


@final
@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """How this provider bids and holds: see the ``provider`` config section."""

    location: Location | None = None
    allow_privileged: bool = False
    port_range: tuple[int, int] = (16384, 32768)
    #: How long a bid stays open, and a commitment lasts before it is allocated (seconds).
    commit_ttl: float = 30.0
    #: A hosted node no orchestrator asked about for this long is reverted (seconds).
    orphan_timeout: float = 300.0
    labels: Mapping[str, str] = field(default_factory=dict)


@final
class Provider:
    """Hosts nodes of other people's deployments on this node's onboarded resources."""

    def __init__(
        self,
        system: ActorSystem,
        ledger: Ledger,
        store: Store,
        *,
        executors: Callable[[], Mapping[str, Executor]],
        availability: Callable[[], Mapping[str, Availability]],
        settings: ProviderSettings = ProviderSettings(),
        record: Record | None = None,
        peer_rtts: Callable[[], Mapping[str, float]] = dict,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._system = system
        self._ledger = ledger
        self._store = store
        self._executors = executors
        self._availability = availability
        self.settings = settings
        self._record = record
        self._peer_rtts = peer_rtts
        self._clock = clock
        self.hosted: dict[str, HostedNode] = {}
        self._orchestrators: dict[str, str] = {}  # hosted id -> orchestrator, committed ones too
        self._nursery: trio.Nursery | None = None
        self._pushes: dict[tuple[str, str], dict[str, Any]] = {}
        self._push_wakeup = trio.Event()
        self._locks: dict[str, trio.Lock] = {}
        #: Each committed node's part of the ensemble (also in the store).
        self._parts: dict[str, Ensemble] = {}
        self._snapshot: tuple[float, LedgerState] | None = None

    @property
    def did(self) -> str:
        return self._system.did

    def register(self, actor: Actor) -> None:
        """Add the ``/dms/deployment/*`` provider behaviours to ``actor`` (the root)."""
        actor.add_behaviour("/dms/deployment/request", self._on_request, concurrent=True)
        actor.add_behaviour("/dms/deployment/commit", self._on_commit, concurrent=True)
        actor.add_behaviour("/dms/deployment/allocate", self._on_allocate, concurrent=True)
        actor.add_behaviour("/dms/deployment/revert", self._on_revert, concurrent=True)
        actor.add_behaviour("/dms/deployment/status", self._on_status, concurrent=True)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Recover what was hosted before a restart, then push status changes and revert
        orphans until cancelled. The system must be running (allocation actors are spawned)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await self._recover()
            nursery.start_soon(self._send_pushes)
            nursery.start_soon(self._revert_orphans)
            task_status.started()
            await trio.sleep_forever()

    # --- bidding -------------------------------------------------------------------------------

    async def _on_request(self, ctx: Context, body: Any) -> dict[str, Any] | None:
        request = BidRequest.from_dict(body)
        if request.orchestrator != ctx.sender:
            raise BadRequest(
                f"the bid request names {request.orchestrator} as orchestrator but comes from"
                f" {ctx.sender}: bids go to the sender only"
            )
        answer = await self.bid(request)
        assert ctx.envelope is not None
        if ctx.envelope.topic is None:
            return answer
        if answer["bids"] or answer["refusals"]:
            await self._system.send(
                Handle(request.orchestrator, _ROOT),
                "/dms/deployment/bid",
                answer | {"deployment": request.deployment, "nonce": request.nonce},
            )
        return None

    async def bid(self, request: BidRequest) -> dict[str, Any]:
        """Signed bids for the nodes of ``request`` this provider can host, refusals (with the
        reason) for the others."""
        now = self._clock()
        bids: list[Bid] = []
        refusals: list[Refusal] = []
        if request.expires <= now:
            reason = f"the bid request expired {now - request.expires:.1f} s ago"
            return {
                "bids": [],
                "refusals": [Refusal(n.node, self.did, reason).to_dict() for n in request.nodes],
            }
        excluded = self.did in request.exclude
        state = await self._ledger_for_bids()
        host = self._host()
        rtts = dict(sorted(self._peer_rtts().items(), key=lambda kv: kv[1])[:64])
        for node in request.nodes:
            if excluded:
                reason = "the ensemble excludes this provider"
            elif node.peer and node.peer != self.did:
                reason = f"the node is pinned to {node.peer}"
            else:
                assessment = assess(node, state, host)
                if assessment.offer is not None:
                    bid = Bid(
                        deployment=request.deployment,
                        nonce=request.nonce,
                        node=node.node,
                        provider=self.did,
                        free=assessment.offer.free,
                        expires=min(request.expires, now + self.settings.commit_ttl),
                        location=self.settings.location,
                        gpus=tuple(g.key for g in assessment.offer.gpus),
                        rtt_ms=rtts,
                    )
                    bids.append(bid.sign(self._system.identity))
                    continue
                reason = assessment.problem
            refusals.append(Refusal(node.node, self.did, reason))
        for refusal in refusals:
            log.info("no bid for %s of %s: %s", refusal.node, request.deployment, refusal.reason)
            await self._event(
                "deployment.no_bid",
                {
                    "deployment": request.deployment,
                    "node": refusal.node,
                    "reason": refusal.reason,
                    "orchestrator": request.orchestrator,
                },
            )
        return {"bids": [b.to_dict() for b in bids], "refusals": [r.to_dict() for r in refusals]}

    def _host(self) -> Host:
        return Host(
            executors=self._availability(),
            location=self.settings.location,
            allow_privileged=self.settings.allow_privileged,
            port_range=self.settings.port_range,
        )

    # --- commit, allocate, revert --------------------------------------------------------------

    async def _on_commit(self, ctx: Context, body: Any) -> dict[str, Any]:
        deployment, slot = _ids(body)
        part = read_part(_get(body, "ensemble"), slot)
        id = hosted_id(deployment, slot)
        async with self._lock(id):
            owner = self._orchestrators.get(id)
            if owner is not None:
                if owner != ctx.sender:
                    raise DeploymentRefused(f"{id} is already committed to another orchestrator")
                record = (await self._ledger.state()).find(id)
                if record is not None:  # a retried commit: the same answer
                    return _committed(id, record)
            request = node_request(part, slot)
            # A recent view is enough here: the ledger's commit checks resources itself.
            assessment = assess(request, await self._ledger_for_bids(), self._host())
            self._snapshot = None
            if assessment.offer is None:
                raise DeploymentRefused(f"cannot commit {id}: {assessment.problem}")
            amount = Resources(
                cpu_cores=request.resources.cpu_cores,
                cpu_hz=request.resources.cpu_hz,
                ram=request.resources.ram,
                disk=request.resources.disk,
                gpus=assessment.offer.gpus,
            )
            # The hosted row is written in the ledger's transaction: both or neither.
            row = functools.partial(
                _insert,
                id=id,
                deployment=deployment,
                slot=slot,
                orchestrator=ctx.sender,
                part=part,
                now=self._clock(),
            )
            try:
                commitment = await self._ledger.commit(
                    id, amount, request.ports, self.settings.commit_ttl, also=row
                )
            except LedgerError as exc:
                raise DeploymentRefused(f"cannot commit {id}: {exc}") from None
            self._orchestrators[id] = ctx.sender
            self._parts[id] = part
        await self._event("deployment.committed", {"id": id, "orchestrator": ctx.sender})
        return _committed(id, commitment)

    async def _on_allocate(self, ctx: Context, body: Any) -> dict[str, Any]:
        deployment, slot = _ids(body)
        id = hosted_id(deployment, slot)
        async with self._lock(id):
            self._check_owner(id, ctx.sender)
            hosted = self.hosted.get(id)
            if hosted is None:
                self._snapshot = None
                try:
                    allocation = await self._ledger.allocate(
                        id, also=functools.partial(_set_state, id=id, state="allocated")
                    )
                except LedgerError as exc:
                    # The commitment is gone (it lapsed): nothing of it is kept.
                    await self._store.write(functools.partial(_delete, id=id))
                    self._forget(id)
                    raise DeploymentRefused(f"cannot allocate {id}: {exc}") from None
                part = self._parts.get(id)
                if part is None:  # committed before a restart
                    part = await self._store.read(functools.partial(_part, id=id))
                try:
                    hosted = await self._host_node(
                        id, deployment, slot, ctx.sender, part, allocation
                    )
                except BaseException:
                    with trio.CancelScope(shield=True):
                        await self._ledger.release(id, also=functools.partial(_delete, id=id))
                        self._forget(id)
                    raise
        await self._event("deployment.allocated", {"id": id, "orchestrator": ctx.sender})
        return _allocated(hosted, self.did)

    async def _host_node(
        self,
        id: str,
        deployment: str,
        slot: str,
        orchestrator: str,
        part: Ensemble,
        allocation: Allocation,
        executions: Mapping[str, Execution] | None = None,
    ) -> HostedNode:
        """Build the hosted node (with recovered ``executions`` after a restart), spawn its
        allocation actors and start watching it."""
        assert self._nursery is not None
        node = part.nodes[base_name(slot)]
        ports = port_mappings(part, slot, allocation.static_ports, allocation.dynamic_ports)
        devices = list(allocation.resources.gpus)
        executors = self._executors()
        allocations: dict[str, HostedAllocation] = {}
        for name in node.allocations:
            spec_of = part.allocations[name]
            gpus = choose_gpus(spec_of.resources.gpus, tuple(devices)) or ()
            for gpu in gpus:
                devices.remove(gpu)
            spec = execution_spec(
                deployment=deployment,
                slot=slot,
                name=name,
                allocation=spec_of,
                gpus=gpus,
                ports=ports.get(name, ()),
                labels={**self.settings.labels, "dms.deployment": deployment, "dms.node": slot},
            )
            hosted_allocation = HostedAllocation(
                name, spec_of, spec, executors.get(spec_of.executor)
            )
            if executions is not None:
                _reattach(hosted_allocation, executions.get(spec.allocation_id))
            allocations[name] = hosted_allocation
        published = [
            {"public": m.host_port, "private": m.container_port, "allocation": name}
            for name, mappings in ports.items()
            for m in mappings
        ]
        hosted = HostedNode(
            id=id,
            deployment=deployment,
            slot=slot,
            orchestrator=orchestrator,
            part=part,
            allocations=allocations,
            ports=published,
            notify=self._changed,
        )
        for name, hosted_allocation in allocations.items():
            await self._system.spawn(
                AllocationActor(hosted, hosted_allocation),
                name=_actor_name(id, name),
                restart=Restart.TEMPORARY,
            )
        await self._nursery.start(hosted.run)
        self.hosted[id] = hosted
        self._orchestrators[id] = orchestrator
        return hosted

    async def _on_revert(self, ctx: Context, body: Any) -> dict[str, Any]:
        deployment = _text(body, "deployment")
        slot = body.get("node")
        if slot is not None and not isinstance(slot, str):
            raise BadRequest("'node' must be a string")
        grace = body.get("grace", 5.0)
        if not isinstance(grace, int | float) or isinstance(grace, bool) or not 0 <= grace <= 300:
            raise BadRequest("'grace' must be a number of seconds from 0 to 300")
        ids = [
            id
            for id, owner in self._orchestrators.items()
            if id.startswith(f"{deployment}/")
            and (slot is None or id == hosted_id(deployment, slot))
        ]
        for id in ids:
            self._check_owner(id, ctx.sender)
        reverted = [
            await self.revert(id, grace=float(grace), why="reverted by its orchestrator")
            for id in ids
        ]
        return {"reverted": [r for r in reverted if r]}

    async def revert(self, id: str, *, grace: float = 5.0, why: str) -> str:
        """Stop, clean up and release hosted node ``id``; returns its slot ('' if unknown)."""
        async with self._lock(id):
            if id not in self._orchestrators:
                return ""
            hosted = self.hosted.pop(id, None)
            with trio.CancelScope(shield=True):
                if hosted is not None:
                    hosted.close()
                    try:
                        await hosted.stop(grace)
                    except DmsError as exc:  # what it holds is released all the same
                        log.warning("%s: its executions could not be stopped: %s", id, exc)
                    await hosted.cleanup()
                    for name in hosted.allocations:
                        await self._system.stop(_actor_name(id, name))
                # Released with its hosted row (an expired commitment held nothing).
                self._snapshot = None
                await self._ledger.release(id, also=functools.partial(_delete, id=id))
                self._forget(id)
                self._locks.pop(id, None)
        await self._event("deployment.reverted", {"id": id, "why": why})
        return id.split("/", 1)[1]

    async def _on_status(self, ctx: Context, body: Any) -> dict[str, Any]:
        deployment = _text(body, "deployment")
        nodes: dict[str, Any] = {}
        for id in list(self._orchestrators):
            if not id.startswith(f"{deployment}/"):
                continue
            self._check_owner(id, ctx.sender)
            hosted = self.hosted.get(id)
            slot = id.split("/", 1)[1]
            if hosted is None:
                nodes[slot] = {"id": id, "node": slot, "state": "committed", "allocations": {}}
            else:
                hosted.last_contact = self._clock()
                nodes[slot] = hosted.snapshot() | {"state": "allocated"}
        return {"deployment": deployment, "provider": self.did, "nodes": nodes}

    def _check_owner(self, id: str, sender: str) -> None:
        owner = self._orchestrators.get(id)
        if owner is None:
            raise UnknownDeployment(
                f"{id} is not committed here (it may have expired or been reverted)"
            )
        if sender not in (owner, self.did):
            raise DeploymentRefused(f"{id} belongs to another orchestrator ({owner})")

    def _forget(self, id: str) -> None:
        self._orchestrators.pop(id, None)
        self._parts.pop(id, None)

    async def _ledger_for_bids(self) -> LedgerState:
        """The ledger as bids see it: read at most every :data:`_SNAPSHOT_SECONDS`, and again
        after any change made here. A bid reserves nothing and a commit checks the ledger
        itself, so a bid on a slightly old view costs at worst a refused commit."""
        now = trio.current_time()
        snapshot = self._snapshot
        if snapshot is None or now - snapshot[0] > _SNAPSHOT_SECONDS:
            snapshot = (now, await self._ledger.state())
            self._snapshot = snapshot
        return snapshot[1]

    def _lock(self, id: str) -> trio.Lock:
        return self._locks.setdefault(id, trio.Lock())

    # --- pushes, orphans, recovery -------------------------------------------------------------

    def _changed(self, hosted: HostedNode, allocation: HostedAllocation) -> None:
        self._pushes[(hosted.id, allocation.name)] = {
            "deployment": hosted.deployment,
            "node": hosted.slot,
            "provider": self.did,
            "orchestrator": hosted.orchestrator,
            "allocation": allocation.snapshot(),
            "time": self._clock(),
        }
        self._push_wakeup.set()

    async def _send_pushes(self) -> None:
        """Send status changes to their orchestrators, the latest per allocation (a lost push
        is made up for by the orchestrator's next status poll)."""
        while True:
            await self._push_wakeup.wait()
            self._push_wakeup = trio.Event()
            pushes, self._pushes = self._pushes, {}
            for push in pushes.values():
                try:
                    await self._system.send(
                        Handle(push["orchestrator"], _ROOT), "/dms/deployment/update", push
                    )
                except (NuactorError, OSError) as exc:
                    log.info(
                        "status of %s/%s not pushed: %s", push["deployment"], push["node"], exc
                    )

    async def _revert_orphans(self) -> None:
        every = min(_ORPHAN_CHECK_SECONDS, self.settings.orphan_timeout / 4)
        while True:
            await trio.sleep(every)
            await self._forget_expired()
            now = self._clock()
            for id, hosted in list(self.hosted.items()):
                silent = now - hosted.last_contact
                if silent > self.settings.orphan_timeout:
                    log.warning(
                        "%s: no word from its orchestrator for %.0f s: reverting", id, silent
                    )
                    await self.revert(
                        id, why=f"orphaned: no word from its orchestrator for {silent:.0f} s"
                    )

    async def _forget_expired(self) -> None:
        """Drop the nodes committed here whose commitment lapsed before it was allocated."""
        committed = [id for id in self._orchestrators if id not in self.hosted]
        if not committed:
            return
        state = await self._ledger.state()
        for id in committed:
            if state.find(id) is None and id not in self.hosted:
                async with self._lock(id):
                    if id in self.hosted or id not in self._orchestrators:
                        continue
                    await self._store.write(functools.partial(_delete, id=id))
                    self._forget(id)
                self._locks.pop(id, None)
                log.info("%s: its commitment lapsed before it was allocated", id)
                await self._event("deployment.commit_lapsed", {"id": id})

    async def _recover(self) -> None:
        """Pick up the nodes hosted before a restart: commitments still live, allocations with
        their executions (recovered by the executors)."""
        rows = await self._store.read(_rows)
        if not rows:
            return
        state = await self._ledger.state()
        executions: dict[str, Execution] = {}
        for name, executor in self._executors().items():
            try:
                for execution in await executor.recover():
                    executions[execution.spec.allocation_id] = execution
            except Exception as exc:
                log.error("executor %s could not recover its executions: %s", name, exc)
        for row in rows:
            id = row["id"]
            record = state.find(id)
            if record is None:  # a commitment that expired while the node was down
                await self._store.write(functools.partial(_delete, id=id))
                continue
            self._orchestrators[id] = row["orchestrator"]
            if row["state"] != "allocated" or not isinstance(record, Allocation):
                continue
            part = read_part(json.loads(row["ensemble"]), row["node"])
            await self._host_node(
                id, row["deployment"], row["node"], row["orchestrator"], part, record, executions
            )
            log.info("recovered hosted node %s", id)
            await self._event("deployment.recovered", {"id": id})
        assert self._nursery is not None
        for id in list(self._orchestrators):
            self._nursery.start_soon(self._confirm, id)

    async def _confirm(self, id: str) -> None:
        """Ask the orchestrator of a node hosted before a restart whether it still wants it;
        revert it if not. An orchestrator that cannot be reached is asked again; the orphan
        timer ends the wait."""
        deployment, slot = id.split("/", 1)
        orchestrator = self._orchestrators.get(id)
        delay = 1.0
        while orchestrator is not None and self._orchestrators.get(id) == orchestrator:
            try:
                answer = await self._system.invoke(
                    Handle(orchestrator, _ROOT),
                    "/dms/deployment/confirm",
                    {"deployment": deployment, "node": slot},
                    timeout=10.0,
                )
            except (NuactorError, OSError) as exc:
                log.info("%s: its orchestrator cannot confirm it yet: %s", id, exc)
                await trio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            if isinstance(answer, dict) and answer.get("keep") is False:
                await self.revert(id, why="its orchestrator no longer wants it (after a restart)")
            elif id in self.hosted:
                self.hosted[id].last_contact = self._clock()
            return

    async def _event(self, kind: str, data: dict[str, Any]) -> None:
        if self._record is not None:
            await self._record(kind, data)


@final
class AllocationActor(Actor):
    """The actor of one hosted allocation: what its orchestrator can ask of it."""

    def __init__(self, node: HostedNode, allocation: HostedAllocation) -> None:
        super().__init__()
        self._node = node
        self._allocation = allocation
        self.add_behaviour("/dms/allocation/start", self._start)
        self.add_behaviour("/dms/allocation/restart", self._restart)
        self.add_behaviour("/dms/allocation/stop", self._stop)
        self.add_behaviour("/dms/allocation/status", self._status, concurrent=True)
        self.add_behaviour("/dms/allocation/logs", self._logs, concurrent=True)

    def _check(self, ctx: Context) -> None:
        if ctx.sender not in (self._node.orchestrator, ctx.system.did):
            raise DeploymentRefused(
                f"allocation {self._allocation.name} of {self._node.id} belongs to another"
                f" orchestrator ({self._node.orchestrator})"
            )
        self._node.last_contact = time.time()

    async def _start(self, ctx: Context, body: Any) -> dict[str, Any]:
        self._check(ctx)
        await self._node.start(self._allocation.name)
        return self._allocation.snapshot()

    async def _restart(self, ctx: Context, body: Any) -> dict[str, Any]:
        self._check(ctx)
        await self._node.restart([self._allocation.name], fresh=True)
        return self._allocation.snapshot()

    async def _stop(self, ctx: Context, body: Any) -> dict[str, Any]:
        self._check(ctx)
        await self._node.stop_one(self._allocation.name)
        return self._allocation.snapshot()

    async def _status(self, ctx: Context, body: Any) -> dict[str, Any]:
        self._check(ctx)
        return self._allocation.snapshot()

    async def _logs(self, ctx: Context, body: Any) -> list[dict[str, Any]]:
        self._check(ctx)
        since = body.get("since") if isinstance(body, dict) else None
        limit = body.get("limit", 1000) if isinstance(body, dict) else 1000
        if since is not None and (not isinstance(since, int | float) or isinstance(since, bool)):
            raise BadRequest("'since' must be a Unix time")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= 10_000:
            raise BadRequest("'limit' must be a number of lines from 0 to 10000")
        lines = await self._allocation.logs(since=since, limit=limit)
        return [{"stream": line.stream, "time": line.time, "text": line.text} for line in lines]


def _reattach(allocation: HostedAllocation, execution: Execution | None) -> None:
    """After a restart: the allocation's execution as recovered, or failed if it is gone."""
    if execution is None:
        allocation.state = "failed"
        allocation.reason = "its execution was not found when the provider restarted"
        return
    status = execution.status()
    allocation.execution = execution
    allocation.state = status.state.value
    allocation.exit_code = status.exit_code
    allocation.reason = status.reason
    allocation.started_at = status.started_at
    allocation.finished_at = status.finished_at


def _actor_name(id: str, allocation: str) -> str:
    return f"alloc/{id}/{allocation}"


def _committed(id: str, record: Any) -> dict[str, Any]:
    return {
        "id": id,
        "expires": getattr(record, "expires_at", None),
        "ports": {"static": list(record.static_ports), "dynamic": list(record.dynamic_ports)},
        "gpus": [g.key for g in record.resources.gpus],
    }


def _allocated(hosted: HostedNode, did: str) -> dict[str, Any]:
    return {
        "id": hosted.id,
        "provider": did,
        "allocations": {
            name: {"actor": _actor_name(hosted.id, name), **a.snapshot()}
            for name, a in hosted.allocations.items()
        },
        "order": hosted.order,
        "ports": hosted.ports,
    }


def _ids(body: Any) -> tuple[str, str]:
    return _text(body, "deployment"), _text(body, "node")


def _get(body: Any, key: str) -> Any:
    if not isinstance(body, dict) or key not in body:
        raise BadRequest(f"the body must be a map with '{key}'")
    return body[key]


def _text(body: Any, key: str) -> str:
    value = _get(body, key)
    if not isinstance(value, str) or not value or len(value) > 256 or "/" in value:
        raise BadRequest(f"'{key}' must be a name of 1 to 256 characters without '/'")
    return value


# --- the store's ``hosted`` table --------------------------------------------------------------


def _insert(
    conn: sqlite3.Connection,
    *,
    id: str,
    deployment: str,
    slot: str,
    orchestrator: str,
    part: Ensemble,
    now: float,
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO hosted (id, deployment, node, orchestrator, ensemble, state,"
        " created_at) VALUES (?, ?, ?, ?, ?, 'committed', ?)",
        (id, deployment, slot, orchestrator, json.dumps(part.to_dict()), now),
    )


def _set_state(conn: sqlite3.Connection, *, id: str, state: str) -> None:
    conn.execute("UPDATE hosted SET state = ? WHERE id = ?", (state, id))


def _delete(conn: sqlite3.Connection, *, id: str) -> None:
    conn.execute("DELETE FROM hosted WHERE id = ?", (id,))


def _part(conn: sqlite3.Connection, *, id: str) -> Ensemble:
    row = conn.execute("SELECT node, ensemble FROM hosted WHERE id = ?", (id,)).fetchone()
    if row is None:
        raise UnknownDeployment(f"{id} is not committed here")
    return read_part(json.loads(row["ensemble"]), row["node"])


def _rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return list(conn.execute("SELECT * FROM hosted ORDER BY created_at"))
