"""The node's Prometheus metrics: envelopes, refusals by reason, handler latency, peers, API.

Counters nuactor keeps anyway (``ActorSystem.counters``, ``Network.counters``) are read at
scrape time through collectors, so the hot path pays nothing for them; handler latency and API
requests are observed as they happen.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, final

from ._metrics import MetricFamily, Registry, Sample, mapping_collector

if TYPE_CHECKING:
    from ..node import Node

__all__ = ["NodeMetrics"]

_ENVELOPE_COUNTERS = {
    "envelopes_in": "in",
    "envelopes_out": "out",
    "envelopes_relayed": "relayed",
    "broadcasts_in": "broadcast_in",
    "broadcasts_out": "broadcast_out",
}
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)


@final
class NodeMetrics:
    """A registry wired to one node; ``render()`` is what ``GET /metrics`` serves."""

    def __init__(self, node: Node) -> None:
        self.registry = registry = Registry()
        self._handler_seconds = registry.histogram(
            "dmsnode_handler_seconds",
            "Time a behaviour's handler took, by behaviour.",
            buckets=_LATENCY_BUCKETS,
            labelnames=("behaviour",),
        )
        self._handler_failures = registry.counter(
            "dmsnode_handler_failures_total",
            "Handlers that raised (the caller got an error), by behaviour.",
            labelnames=("behaviour",),
        )
        self._api_requests = registry.counter(
            "dmsnode_api_requests_total",
            "REST API requests, by route, method and status.",
            labelnames=("route", "method", "status"),
        )
        self._api_seconds = registry.histogram(
            "dmsnode_api_request_seconds",
            "REST API request durations, by route.",
            buckets=_LATENCY_BUCKETS,
            labelnames=("route",),
        )
        system, network = node.system, node.network
        registry.register_collector(
            mapping_collector(
                "dmsnode_envelopes_total",
                "Envelopes through the actor system, by direction.",
                lambda: _renamed(system.counters, _ENVELOPE_COUNTERS),
                label="direction",
            )
        )
        registry.register_collector(
            mapping_collector(
                "dmsnode_refusals_total",
                "Envelopes refused before or at their behaviour, by reason.",
                lambda: _prefixed(system.counters, "refused_"),
                label="reason",
            )
        )
        registry.register_collector(
            mapping_collector(
                "dmsnode_network_events_total",
                "Network layer events (sessions, dials, frames), by event.",
                lambda: network.counters,
                label="event",
            )
        )
        started = time.time()

        def gauges() -> list[MetricFamily]:
            peers = network.peers()
            connected = sum(1 for p in peers if p.connected)
            return [
                MetricFamily(
                    "dmsnode_peers",
                    "Peers the node knows, by state.",
                    "gauge",
                    [
                        Sample("dmsnode_peers", {"state": "known"}, len(peers)),
                        Sample("dmsnode_peers", {"state": "connected"}, connected),
                    ],
                ),
                MetricFamily(
                    "dmsnode_uptime_seconds",
                    "Seconds since the node started.",
                    "gauge",
                    [Sample("dmsnode_uptime_seconds", {}, round(time.time() - started, 3))],
                ),
            ]

        registry.register_collector(gauges)

    def handled(self, behaviour: str, seconds: float, ok: bool) -> None:
        """The actor system's ``on_handled`` hook."""
        self._handler_seconds.labels(behaviour=behaviour).observe(seconds)
        if not ok:
            self._handler_failures.labels(behaviour=behaviour).inc()

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """The REST API's per-request hook."""
        self._api_requests.labels(route=route, method=method, status=str(status)).inc()
        self._api_seconds.labels(route=route).observe(seconds)

    def render(self) -> str:
        return self.registry.render()


def _renamed(counters: Mapping[str, int], names: Mapping[str, str]) -> dict[str, int]:
    return {label: counters.get(key, 0) for key, label in names.items()}


def _prefixed(counters: Mapping[str, int], prefix: str) -> dict[str, int]:
    return {key[len(prefix) :]: value for key, value in counters.items() if key.startswith(prefix)}
