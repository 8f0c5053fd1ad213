"""A network of provider nodes and orchestrators inside one process: for tests and benchmarks.

Every simulated node is a real :class:`~nuactor.ActorSystem` with its own identity, trust context,
SQLite store and ledger, and the real provider and orchestrator code; only the transport (the
memory transport) and the executor (``null``) stand in for the machine. Trust is set up as an
organisation would: every node anchors the organisation as root and holds the organisation's
powerline grants of ``/dms/deployment`` and ``/dms/allocation``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, final

import trio

from nuactor import Actor, ActorSystem, Identity, MemoryNetwork, SystemConfig, TrustContext

from .ensemble import Location
from .executors import Availability, Executor, NullExecutor
from .orchestrator import Orchestrator, OrchestratorSettings
from .provider import DEPLOYMENT_TOPIC, Provider, ProviderSettings
from .resources import Ledger, Resources
from .store import Store

__all__ = ["SimNode", "Simulation"]

#: What each simulated provider onboards by default.
DEFAULT_SHARE: Final = Resources(cpu_cores=4, ram=8 << 30, disk=64 << 30)
DEFAULT_SETTINGS: Final = OrchestratorSettings()

#: What the organisation grants every simulated node.
GRANTS = ("/dms/deployment", "/dms/allocation")


@final
@dataclass
class SimNode:
    """One simulated node (a provider, an orchestrator, or both)."""

    name: str
    identity: Identity
    system: ActorSystem
    store: Store
    ledger: Ledger | None = None
    provider: Provider | None = None
    orchestrator: Orchestrator | None = None
    executors: dict[str, Executor] = field(default_factory=dict)
    root: Actor = field(default_factory=Actor)
    #: Cancels the node's orchestrator (see :meth:`Simulation.restart_orchestrator`).
    orchestrator_scope: trio.CancelScope | None = None

    @property
    def did(self) -> str:
        return self.identity.did


@final
class Simulation:
    """``providers`` onboarded providers and ``orchestrators`` orchestrators on one memory
    network, with their stores in ``directory`` (a tmpfs keeps the disk out of measurements)."""

    def __init__(
        self,
        directory: Path,
        *,
        providers: int,
        orchestrators: int = 1,
        share: Resources = DEFAULT_SHARE,
        orchestrator_settings: OrchestratorSettings = DEFAULT_SETTINGS,
        provider_settings: Callable[[int], ProviderSettings] = lambda i: ProviderSettings(),
        null_run_for: float = 0.0,
        location: Callable[[int], Location | None] = lambda i: None,
    ) -> None:
        self.directory = directory
        self.provider_count = providers
        self.orchestrator_count = orchestrators
        self.share = share
        self.orchestrator_settings = orchestrator_settings
        self.provider_settings = provider_settings
        self.null_run_for = null_run_for
        self.location = location
        self.network = MemoryNetwork(queue_size=0)
        self.org = Identity.generate()
        self.providers: list[SimNode] = []
        self.orchestrators: list[SimNode] = []
        self._nursery: trio.Nursery
        self._bidders: list[tuple[str, bool]] = []

    @property
    def nodes(self) -> list[SimNode]:
        return [*self.orchestrators, *self.providers]

    def envelopes_out(self) -> int:
        """Envelopes sent by every node so far (the benchmark's message count)."""
        return sum(node.system.counters["envelopes_out"] for node in self.nodes)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Simulation]:
        """Start every node; stop them all on leaving."""
        org_trust = TrustContext(self.org)
        async with contextlib.AsyncExitStack() as stack:
            for i in range(self.orchestrator_count):
                node = await self._node(stack, f"orchestrator{i}", org_trust)
                node.orchestrator = Orchestrator(
                    node.system,
                    node.store,
                    settings=self.orchestrator_settings,
                    peers=self._peers,
                )
                self.orchestrators.append(node)
            for i in range(self.provider_count):
                node = await self._node(stack, f"provider{i}", org_trust)
                node.ledger = await Ledger.open(node.store)
                # The simulated machine is twice the share (onboarding keeps a margin for the OS).
                machine = self.share + self.share
                await node.ledger.onboard(self.share, machine=machine, disk_free=machine.disk)
                executor = await stack.enter_async_context(NullExecutor(run_for=self.null_run_for))
                node.executors = {"null": executor}
                availability = {"null": Availability(True)}
                settings = self.provider_settings(i)
                if settings.location is None and self.location(i) is not None:
                    settings = ProviderSettings(
                        location=self.location(i),
                        allow_privileged=settings.allow_privileged,
                        port_range=settings.port_range,
                        commit_ttl=settings.commit_ttl,
                        orphan_timeout=settings.orphan_timeout,
                    )
                node.provider = Provider(
                    node.system,
                    node.ledger,
                    node.store,
                    executors=node.executors.copy,
                    availability=availability.copy,
                    settings=settings,
                )
                self.providers.append(node)
            self._bidders = [(node.did, True) for node in self.providers]
            # The nodes' own tasks stop (this nursery closes) before their actor systems do, so
            # that no system is stopped from inside a cancelled scope.
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for node in self.nodes:
                    if node.provider is not None:
                        node.provider.register(node.root)
                    if node.orchestrator is not None:
                        node.orchestrator.register(node.root)
                    await node.system.spawn(node.root, name="root")
                    if node.provider is not None:
                        node.system.subscribe(DEPLOYMENT_TOPIC, "root")
                        await nursery.start(node.provider.run)
                    if node.orchestrator is not None:
                        await nursery.start(self._run_orchestrator, node)
                try:
                    yield self
                finally:
                    nursery.cancel_scope.cancel()

    async def _node(
        self, stack: contextlib.AsyncExitStack, name: str, org_trust: TrustContext
    ) -> SimNode:
        identity = Identity.generate()
        trust = TrustContext(identity)
        trust.add_root(self.org.did)
        for cmd in GRANTS:
            trust.add_provide(org_trust.grant(identity.did, cmd, powerline=True, expiration=None))
        store = await Store.open(self.directory / f"{name}.db")
        await stack.enter_async_context(store)
        system = ActorSystem(
            identity,
            trust,
            transports=[self.network.transport(name)],
            config=SystemConfig(mailbox_size=4096),
        )
        await stack.enter_async_context(system)
        return SimNode(name, identity, system, store)

    async def _run_orchestrator(
        self, node: SimNode, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        assert node.orchestrator is not None
        with trio.CancelScope() as scope:
            node.orchestrator_scope = scope
            await node.orchestrator.run(task_status=task_status)

    async def restart_orchestrator(self, node: SimNode) -> Orchestrator:
        """Stop ``node``'s orchestrator as a crash would (its tasks cancelled mid-step) and
        start a fresh one on the same store, which resumes what it finds there."""
        assert node.orchestrator_scope is not None
        node.orchestrator_scope.cancel()
        node.orchestrator = Orchestrator(
            node.system, node.store, settings=self.orchestrator_settings, peers=self._peers
        )
        node.orchestrator.register(node.root)
        await self._nursery.start(self._run_orchestrator, node)
        return node.orchestrator

    def disconnect(self, node: SimNode) -> None:
        """Cut ``node`` off the network, as if its machine died (it can reach no one, and no
        one it)."""
        self.network.disconnect(node.did)

    def _peers(self) -> list[tuple[str, bool]]:
        return self._bidders
