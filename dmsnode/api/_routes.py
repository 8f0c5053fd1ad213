"""The readable routes: health, the node's status, peers, capabilities, events, metrics and
the OpenAPI document. Local and read-only: they sign nothing and change nothing.

Metrics and events come from ``node.metrics`` (a registry with ``render() -> str``) and
``node.events`` (with ``await list(since_id=, kind=, limit=)``); a node without them answers
503 ``Unavailable``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from quart import Blueprint, Response

from ._body import query_int, query_str
from ._openapi import openapi_document
from ._responses import ApiProblem, json_response

if TYPE_CHECKING:
    from ..node import Node

__all__ = ["EventSource", "MetricsSource", "readable_blueprint"]

#: Prometheus's text exposition format.
METRICS_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_EVENTS: Final = 100
MAX_EVENTS: Final = 1000
_EVENT_FIELDS: Final = ("id", "ts_ms", "kind", "level", "data")


class MetricsSource(Protocol):
    """What ``/metrics`` needs of ``node.metrics``."""

    def render(self) -> str: ...


class EventSource(Protocol):
    """What ``/api/v1/events`` needs of ``node.events``: events in id order (the first
    ``limit`` after ``since_id``, else the newest ``limit``), each with ``id``, ``ts_ms``,
    ``kind``, ``level`` and ``data``."""

    async def list(
        self, *, since_id: int | None = None, kind: str | None = None, limit: int = 100
    ) -> Sequence[Any]: ...


def readable_blueprint(node: Node) -> Blueprint:
    """The read-only routes about ``node``."""
    bp = Blueprint("readable", __name__)
    document = openapi_document()

    @bp.get("/health")
    async def health() -> Response:
        """Liveness: the API answers, and for which node."""
        return json_response({"status": "ok", "did": node.did})

    @bp.get("/api/v1/node/status")
    async def status() -> Response:
        return json_response(node.status(full=True))

    @bp.get("/api/v1/peers")
    async def peers() -> Response:
        return json_response(node.peers())

    @bp.get("/api/v1/capabilities")
    async def capabilities() -> Response:
        return json_response(node.capabilities())

    @bp.get("/api/v1/events")
    async def events() -> Response:
        since = query_int("since", default=None, low=0)
        limit = query_int("limit", default=DEFAULT_EVENTS, low=1, high=MAX_EVENTS)
        kind = query_str("kind")
        source: EventSource | None = getattr(node, "events", None)
        if source is None:
            raise _unavailable("this node keeps no event log (it has no store open)")
        rows = [_event(row) for row in await source.list(since_id=since, kind=kind, limit=limit)]
        last = rows[-1]["id"] if rows else since
        return json_response({"events": rows, "next_since": last})

    @bp.get("/metrics")
    async def metrics() -> Response:
        registry: MetricsSource | None = getattr(node, "metrics", None)
        if registry is None:
            raise _unavailable(
                "this node keeps no metrics (turn them on with "
                "'dmsnode config set observability.metrics true' and restart it)"
            )
        return Response(registry.render(), status=200, content_type=METRICS_TYPE)

    @bp.get("/api/v1/openapi.json")
    async def openapi() -> Response:
        return json_response(document)

    return bp


def _event(row: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if isinstance(row, dict):
        return row
    return {name: getattr(row, name, None) for name in _EVENT_FIELDS}


def _unavailable(detail: str) -> ApiProblem:
    return ApiProblem(503, "Unavailable", detail)
