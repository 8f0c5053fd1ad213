"""A running DMS node: one actor system whose root actor carries the node behaviours (DESIGN §3.1).

The node composes nuactor's pieces (identity, trust context, network, actor system) with the
application's own (config, store, API, plugins). :meth:`Node.running` owns all of them: leaving
it stops everything.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final, final

import trio

from nuactor import ActorSystem, Identity, SystemConfig, TrustContext
from nuactor.transport import Network, NetworkConfig, PeerRecord

from . import __version__
from .behaviours import build_root_actor
from .config import Config
from .ensemble import Location
from .executors import Availability, Executor
from .observability import Events, NodeMetrics
from .orchestrator import Orchestrator, OrchestratorSettings
from .plugins import load_plugins
from .provider import DEPLOYMENT_TOPIC, Provider, ProviderSettings
from .resources import Hardware, Ledger
from .store import Store

__all__ = ["HELLO_TOPIC", "ROOT_ACTOR", "Node", "orchestrator_settings", "provider_settings"]

log = logging.getLogger("dmsnode.node")

ROOT_ACTOR: Final = "root"
HELLO_TOPIC: Final = "/nunet/hello"


@final
class Node:
    """The node: its identity, trust, network, actor system and root actor."""

    def __init__(
        self,
        config: Config,
        identity: Identity,
        trust: TrustContext,
        *,
        extra_behaviours: Callable[[Any], None] | None = None,
        plugins: bool = True,
        store: Store | None = None,
        ledger: Ledger | None = None,
        hardware: Hardware | None = None,
    ) -> None:
        self.config = config
        self.identity = identity
        self.trust = trust
        p2p = config.get("p2p")
        self.network = Network(
            identity,
            NetworkConfig(
                listen=tuple(p2p["listen_address"]),
                bootstrap=tuple(p2p["bootstrap_peers"]),
                fanout=int(p2p.get("fanout", 6)),
            ),
        )
        self.system = ActorSystem(
            identity,
            trust,
            transports=[self.network],
            config=SystemConfig(trust_sessions=bool(p2p.get("trust_sessions", False))),
        )
        self.metrics = NodeMetrics(self)
        self.system.on_handled = self.metrics.handled
        self.store = store
        self.ledger = ledger
        self.hardware = hardware
        #: The executors this node runs workloads with, and whether each can (see daemon).
        self.executors: dict[str, Executor] = {}
        self.executor_availability: dict[str, Availability] = {}
        self.events = (
            Events(store, keep=int(config.get("observability.events_keep"))) if store else None
        )
        self.root = build_root_actor(self)
        #: This node as a provider (it needs a ledger) and as an orchestrator (a store).
        self.provider: Provider | None = None
        self.orchestrator: Orchestrator | None = None
        if store is not None and ledger is not None:
            self.provider = Provider(
                self.system,
                ledger,
                store,
                executors=lambda: self.executors,
                availability=lambda: self.executor_availability,
                settings=provider_settings(config, node_did=identity.did),
                record=self.record,
                peer_rtts=self._peer_rtts,
            )
            self.provider.register(self.root)
        if store is not None:
            self.orchestrator = Orchestrator(
                self.system,
                store,
                settings=orchestrator_settings(config),
                peers=self._bidders,
                rtt=self._rtt,
                record=self.record,
            )
            self.orchestrator.register(self.root)
        if extra_behaviours is not None:
            extra_behaviours(self.root)
        self.plugins = load_plugins(self.root, self) if plugins else []
        self.started_at = time.time()
        self.hellos: dict[str, float] = {}
        #: The REST API's base URL once it listens.
        self.api_url: str | None = None

    @property
    def did(self) -> str:
        return self.identity.did

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Node]:
        """Start the actor system and the root actor; stop everything on exit."""
        async with self.system, trio.open_nursery() as nursery:
            await self.system.spawn(self.root, name=ROOT_ACTOR)
            self.system.subscribe(HELLO_TOPIC, ROOT_ACTOR)
            if self.provider is not None:
                self.system.subscribe(DEPLOYMENT_TOPIC, ROOT_ACTOR)
                await nursery.start(self.provider.run)
            if self.orchestrator is not None:
                await nursery.start(self.orchestrator.run)
            self.started_at = time.time()
            yield self
            nursery.cancel_scope.cancel()

    # --- what behaviours and the API report -------------------------------------------------

    def status(self, *, full: bool) -> dict[str, Any]:
        """The node's status; ``full`` adds what only authorised callers should see."""
        public: dict[str, Any] = {
            "did": self.did,
            "version": __version__,
            "uptime_s": round(time.time() - self.started_at, 3),
        }
        if not full:
            return public
        peers = self.network.peers()
        return public | {
            "addresses": self.network.addresses,
            "api": self.api_url,
            "peers": {
                "known": len(peers),
                "connected": sum(1 for p in peers if p.connected),
            },
            "actors": [a["name"] for a in self.system.actors()],
            "counters": dict(self.system.counters),
            "behaviours": sorted(self.root.behaviours),
            "hellos": dict(self.hellos),
            "executors": self.executor_status(),
            "plugins": [
                {"name": p.name, "behaviours": p.behaviours, "error": p.error} for p in self.plugins
            ],
        }

    def peers(self) -> list[dict[str, Any]]:
        """Every known peer, connected ones first."""
        return [_peer(record) for record in self.network.peers()]

    def capabilities(self) -> list[dict[str, Any]]:
        """The trust context's anchors, for display."""
        rows = []
        for anchor in self.trust.anchors():
            delegation = anchor.delegation
            rows.append(
                {
                    "kind": anchor.kind,
                    "cid": anchor.cid,
                    "iss": delegation.iss,
                    "aud": delegation.aud,
                    "sub": delegation.sub,
                    "cmd": delegation.cmd,
                    "exp": delegation.exp,
                    "revoked": anchor.revoked,
                }
            )
        return rows

    def executor_status(self) -> dict[str, Any]:
        """Which executors this node can use, and why not where it cannot."""
        return {
            name: {
                "available": availability.available,
                "reason": availability.reason,
                "details": dict(availability.details),
            }
            for name, availability in self.executor_availability.items()
        }

    async def stop_allocations(self, alloc_ids: list[str]) -> None:
        """Stop what these allocations run (after a forced offboarding released them): their
        hosted nodes are reverted; their orchestrators find them gone at their next poll and
        recover them elsewhere."""
        for alloc_id in alloc_ids:
            if self.provider is not None:
                await self.provider.revert(alloc_id, why="the node was offboarded")
            log.info("allocation %s released", alloc_id)

    def _bidders(self) -> list[tuple[str, bool]]:
        """Whom this node's orchestrator may ask for bids: its peers, and itself when it is a
        provider too (``(did, connected)``)."""
        peers = [(p.did, p.connected) for p in self.network.peers()]
        return [*peers, (self.did, True)] if self.provider is not None else peers

    def _peer_rtts(self) -> dict[str, float]:
        return {p.did: p.rtt * 1000 for p in self.network.peers() if p.rtt is not None}

    def _rtt(self, did: str) -> float | None:
        return self._peer_rtts().get(did)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """The REST API's per-request hook (metrics)."""
        self.metrics.request(route, method, status, seconds)

    async def record(self, kind: str, data: dict[str, Any], *, level: str = "info") -> None:
        """An event for the operator: in the events table (committed) and in the log."""
        log.log(logging.getLevelName(level.upper()), "event %s", kind, extra={"event": data})
        if self.events is not None:
            await self.events.record(kind, data, level=level)

    def save_trust(self) -> None:
        """Persist the trust context if it has a file (anchors changed at run time)."""
        if self.trust.path is not None:
            self.trust.save()


def provider_settings(config: Config, *, node_did: str = "") -> ProviderSettings:
    """The ``provider`` config section (and ``job``'s rules) as settings."""
    section = config.get("provider")
    continent = section["continent"]
    location = (
        Location(continent=continent, country=section["country"], city=section["city"])
        if continent
        else None
    )
    return ProviderSettings(
        location=location,
        allow_privileged=bool(config.get("job.allow_privileged_docker")),
        port_range=(int(config.get("job.port_range")[0]), int(config.get("job.port_range")[1])),
        commit_ttl=float(section["commit_ttl_s"]),
        orphan_timeout=float(section["orphan_timeout_s"]),
        labels={"dms.provider": node_did} if node_did else {},
    )


def orchestrator_settings(config: Config) -> OrchestratorSettings:
    """The ``orchestrator`` config section as settings."""
    section = config.get("orchestrator")
    return OrchestratorSettings(
        bid_requests=section["bid_requests"],
        bid_fanout=int(section["bid_fanout"]),
        bid_timeout=section["bid_timeout_ms"] / 1000,
        bid_quorum=int(section["bid_quorum"]),
        step_timeout=section["step_timeout_ms"] / 1000,
        deployment_timeout=float(section["deployment_timeout_s"]),
        liveness_interval=section["liveness_interval_ms"] / 1000,
        liveness_misses=int(section["liveness_misses"]),
        recovery_limit=int(section["recovery_limit"]),
    )


def _peer(record: PeerRecord) -> dict[str, Any]:
    return {
        "did": record.did,
        "addresses": list(record.addresses),
        "connected": record.connected,
        "rtt_ms": None if record.rtt is None else round(record.rtt * 1000, 3),
        "last_seen": record.last_seen,
    }


def trust_path(user_dir: Path, context: str = "dms") -> Path:
    """Where the trust context ``context`` is kept."""
    return user_dir / "cap" / f"{context}.json"
