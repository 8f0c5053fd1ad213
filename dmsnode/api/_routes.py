"""The readable routes: health, the node's status, peers, capabilities, events, metrics and
the OpenAPI document (local and read-only: they sign nothing and change nothing); and the
deployment routes, ``/api/v1/deployments``, the orchestrator's operator behaviours
(``/dms/node/deployment/*``) for programs that speak HTTP rather than signed envelopes.

Metrics and events come from ``node.metrics`` (a registry with ``render() -> str``) and
``node.events`` (with ``await list(since_id=, kind=, limit=)``); a node without them answers
503 ``Unavailable``.

The deployment routes invoke the behaviours on the node's root actor as the node itself, so
they answer exactly what the CLI gets through the gateway. Reading them is like every readable
route (unauthenticated: keep ``rest.addr`` on a loopback address). The ones that change something
(deploy, shut down, delete) sign nothing, so they are refused unless the operator turned
``rest.unsigned_writes`` on (off by default: a signed call through the gateway, as ``dmsnode
deploy`` makes, is the authorised way); even then a request a browser sends on a web page's
behalf (it carries ``Origin``) is refused, so that a page the operator visits cannot deploy or
stop anything.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from quart import Blueprint, Response, request

from nuactor import Handle
from nuactor.errors import Busy, InvokeTimeout, RemoteError

from ..ensemble import EnsembleInvalid, SpecError, validate_data
from ..ensemble import validate as validate_text
from ..node import ROOT_ACTOR
from ._body import bad_request, json_body, json_type, query_int, query_str
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
#: How long a deployment route waits for the orchestrator's answer (seconds).
DEPLOYMENT_TIMEOUT: Final = 30.0
_DEPLOY_EXAMPLE: Final = (
    '{"ensemble": "<the ensemble\'s YAML, or the same as a JSON object>", "timeout": 600}'
)
_DEPLOY_FIELDS: Final = ("ensemble", "timeout")
#: Content types of a deployment request whose body is the ensemble's YAML itself.
YAML_TYPES: Final = frozenset(
    {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
)
#: What a behaviour's refusal becomes: its error type -> HTTP status (422 otherwise).
_DEPLOYMENT_STATUS: Final = {"BadRequest": 400, "UnknownDeployment": 404, "DeploymentError": 409}


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

    _deployment_routes(bp, node)
    return bp


def _deployment_routes(bp: Blueprint, node: Node) -> None:
    """``/api/v1/deployments``: the orchestrator's operator behaviours."""

    def require_orchestrator() -> None:
        if getattr(node, "orchestrator", None) is None:
            raise _unavailable(
                "this node orchestrates no deployments: it runs without a store "
                "(a node started with 'dmsnode run' has one)"
            )

    async def call(beh: str, body: dict[str, Any]) -> Any:
        require_orchestrator()
        try:
            return await node.system.invoke(
                Handle(node.did, ROOT_ACTOR),
                f"/dms/node/deployment/{beh}",
                body,
                timeout=DEPLOYMENT_TIMEOUT,
            )
        except RemoteError as exc:
            raise ApiProblem(_DEPLOYMENT_STATUS.get(exc.type, 422), exc.type, exc.message) from None
        except Busy as exc:
            wait = max(1, math.ceil(exc.retry_after if exc.retry_after is not None else 1.0))
            raise ApiProblem(
                429, "Busy", f"{exc}: try again in {wait} s", headers={"Retry-After": str(wait)}
            ) from None
        except InvokeTimeout as exc:
            raise ApiProblem(
                504, "InvokeTimeout", f"{exc}: the node is overloaded; try again later"
            ) from None

    def check_write() -> None:
        require_orchestrator()
        if not node.config.get("rest.unsigned_writes"):
            raise ApiProblem(
                403,
                "Unauthorized",
                "deploying, shutting down and deleting through this API signs nothing, and "
                "rest.unsigned_writes is off: use the signed gateway ('dmsnode deploy', "
                "'dmsnode deployments shutdown|delete', or POST /api/v1/actor/invoke with a "
                "signed envelope), or turn rest.unsigned_writes on if every local program may "
                "deploy through this node",
            )
        _refuse_web_pages()

    @bp.post("/api/v1/deployments")
    async def deployment_new() -> Response:
        """Deploy an ensemble: 201 with the deployment's summary once it is saved."""
        check_write()
        body, errors = await _deployment_request()
        if errors:
            # Every problem, also as data (path, line, message) for the program that sent it.
            problem = {"error": "BadRequest", "detail": str(EnsembleInvalid(errors))}
            return json_response(problem | {"errors": [e.to_dict() for e in errors]}, 400)
        summary = await call("new", body)
        location = f"/api/v1/deployments/{summary['id']}"
        return json_response(summary, 201, headers={"Location": location})

    @bp.get("/api/v1/deployments")
    async def deployment_list() -> Response:
        return json_response(await call("list", {}))

    @bp.get("/api/v1/deployments/<id>")
    async def deployment_status(id: str) -> Response:
        return json_response(await call("status", {"id": id}))

    @bp.get("/api/v1/deployments/<id>/manifest")
    async def deployment_manifest(id: str) -> Response:
        return json_response(await call("manifest", {"id": id}))

    @bp.get("/api/v1/deployments/<id>/logs")
    async def deployment_logs(id: str) -> Response:
        wanted = query_str("allocation")
        result = await call("logs", {"id": id})
        if wanted is not None:
            logs = result.get("logs") or {}
            result["logs"] = {
                key: lines for key, lines in logs.items() if wanted in (key, key.split("/", 1)[-1])
            }
            if logs and not result["logs"]:
                raise ApiProblem(
                    404,
                    "UnknownAllocation",
                    f"deployment {id} has no output from an allocation {wanted!r}; it has "
                    f"{', '.join(sorted(logs))}: ask for one of those (or its part after '/')",
                )
        return json_response(result)

    @bp.post("/api/v1/deployments/<id>/shutdown")
    async def deployment_shutdown(id: str) -> Response:
        """Stop a deployment: 202 once ShuttingDown is saved (it ends Completed)."""
        check_write()
        return json_response(await call("shutdown", {"id": id}), 202)

    @bp.delete("/api/v1/deployments/<id>")
    async def deployment_delete(id: str) -> Response:
        check_write()
        return json_response(await call("delete", {"id": id}))


async def _deployment_request() -> tuple[dict[str, Any], list[SpecError]]:
    """The body of a deployment (JSON ``{ensemble, timeout?}``, or the ensemble's YAML itself
    with ``?timeout=``) and every problem of its ensemble."""
    mimetype = request.mimetype
    if mimetype in YAML_TYPES:
        raw = await request.get_data(cache=False, as_text=False, parse_form_data=False)
        if not raw.strip():
            raise bad_request("the request has no body: send the ensemble's YAML")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad_request("the body is not UTF-8 text: send the ensemble's YAML") from None
        body: dict[str, Any] = {"ensemble": text}
        timeout = _query_seconds("timeout")
        if timeout is not None:
            body["timeout"] = timeout
        return body, validate_text(text)
    if mimetype != "application/json":
        raise ApiProblem(
            415,
            "UnsupportedMediaType",
            f"a deployment is sent as JSON (Content-Type: application/json, such as "
            f"{_DEPLOY_EXAMPLE}) or as the ensemble's YAML (Content-Type: application/yaml); "
            f"this request's Content-Type is {mimetype or 'missing'}",
        )
    body = await json_body(_DEPLOY_EXAMPLE)
    unknown = sorted(set(body) - set(_DEPLOY_FIELDS))
    if unknown:
        raise bad_request(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
            f"a deployment request has only 'ensemble' and 'timeout'"
        )
    if "ensemble" not in body:
        raise bad_request(f"'ensemble' is missing: send {_DEPLOY_EXAMPLE}")
    timeout = body.get("timeout")
    if timeout is not None and not _positive(timeout):
        raise bad_request(
            f"'timeout' must be a positive number of seconds, got {json.dumps(timeout)}"
        )
    ensemble = body["ensemble"]
    if isinstance(ensemble, str):
        return body, validate_text(ensemble)
    if isinstance(ensemble, dict):
        return body, validate_data(ensemble)
    raise bad_request(
        "'ensemble' must be the ensemble's YAML (a string) or the same as a JSON object, "
        f"not a {json_type(ensemble)}"
    )


def _query_seconds(name: str) -> float | None:
    text = request.args.get(name)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not _positive(value):
        raise bad_request(
            f"query parameter '{name}' must be a positive number of seconds, got {text!r}"
        )
    return value


def _positive(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _refuse_web_pages() -> None:
    """Refuse a request a browser sends for a web page (it has ``Origin``; programs send none):
    these routes are unauthenticated, and must not be a page's way to deploy or stop things."""
    origin = request.headers.get("Origin")
    if origin is not None:
        raise ApiProblem(
            403,
            "CrossOrigin",
            f"a web page ({origin}) may not deploy, shut down or delete deployments through "
            "this unauthenticated API; send the request from a program (curl, the dmsnode CLI), "
            "which sends no Origin header",
        )


def _event(row: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return dataclasses.asdict(row)
    if isinstance(row, dict):
        return row
    return {name: getattr(row, name, None) for name in _EVENT_FIELDS}


def _unavailable(detail: str) -> ApiProblem:
    return ApiProblem(503, "Unavailable", detail)
