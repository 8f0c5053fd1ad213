"""Request metrics: each request's route, method, status and duration, told to the node.

The API does not know the metrics registry; it calls ``node.observe_request(route, method,
status, seconds)`` when the node has one (a :class:`RequestObserver`), and does nothing
otherwise. ``route`` is the route's rule (``/api/v1/actor/invoke``), or ``"unmatched"`` for a
request no route took, so a scan of random paths cannot grow the label set.
"""

from __future__ import annotations

import logging
import time
from typing import Final, Protocol

from quart import Quart, Response, g, request

__all__ = ["UNMATCHED", "RequestObserver", "install_request_metrics"]

UNMATCHED: Final = "unmatched"

log = logging.getLogger("dmsnode.api")


class RequestObserver(Protocol):
    """Told of every request once its response is ready."""

    def __call__(self, route: str, method: str, status: int, seconds: float) -> None: ...


def install_request_metrics(app: Quart, node: object) -> None:
    """Time every request of ``app`` and tell ``node.observe_request`` (looked up per request,
    so a node may gain one after the app is built)."""

    @app.before_request
    async def start_clock() -> None:
        g.dms_started = time.perf_counter()

    @app.after_request
    async def observe(response: Response) -> Response:
        observer: RequestObserver | None = getattr(node, "observe_request", None)
        if observer is None:
            return response
        started = g.get("dms_started")
        seconds = 0.0 if started is None else time.perf_counter() - started
        rule = request.url_rule
        route = UNMATCHED if rule is None else rule.rule
        try:
            observer(route, request.method, response.status_code, seconds)
        except Exception:  # a broken metrics hook must not cost the caller its response
            log.exception("observe_request failed for %s %s", request.method, route)
        return response
