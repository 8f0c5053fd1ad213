"""The OpenAPI 3.1 document of the REST API, as data (served at ``/api/v1/openapi.json`` and
rendered into ``docs/api.md`` by ``python -m dmsnode.api.docs``).

Keep it in step with the routes: a test checks that every route of the app is here, with its
methods, and nothing else is.
"""

from __future__ import annotations

from typing import Any, Final

from .. import __version__

__all__ = ["openapi_document"]

_JSON: Final = "application/json"

_DESCRIPTION: Final = """\
The REST API of a dmsnode (a NuNet Device Management Service node). It listens on
`rest.addr:rest.port` (127.0.0.1:9999 by default).

Two kinds of routes:

- **The actor gateway** (`/api/v1/actor/*`), as in NuNet: a client signs an envelope with its
  own key and posts it as base64; the node checks it exactly as it checks an envelope from the
  network (size, signature, expiry, replay, then admission and UCAN authorisation) and delivers
  it here, forwards it to the node it is addressed to, or gossips it.
- **Readable routes**: the node's health, status, peers, capabilities, events and metrics.
  They are read-only and unauthenticated: keep `rest.addr` on a loopback address.
- **Deployment routes** (`/api/v1/deployments`): the orchestrator's operator behaviours
  (`/dms/node/deployment/*`, what `dmsnode deploy` and `dmsnode deployments` use), invoked as
  the node itself. Reading them is unauthenticated like the readable routes. Those that change
  something (deploy, shut down, delete) sign nothing, so they are refused (403 `Unauthorized`)
  unless the operator turns `rest.unsigned_writes` on (then every local program may deploy
  through this node); the signed gateway (`dmsnode deploy`) is the authorised way. Even when
  allowed, they refuse a request carrying `Origin` (403 `CrossOrigin`): a web page the
  operator visits cannot use them.

Every response is JSON except `/metrics` (Prometheus text). Every error is
`{"error": "<Type>", "detail": "<what was wrong and what to do>"}` with a 4xx or 5xx status:
an unknown route is 404 `NotFound`, a wrong method 405 `MethodNotAllowed` (with `Allow`), a
body over 2 MiB 413 `RequestEntityTooLarge`, and an unexpected failure 500 `InternalError`
(logged by the node). Bytes in a behaviour's reply are given as base64 text.
"""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _errors(*names: str) -> dict[str, Any]:
    """Error responses by status, from ``components.responses``."""
    chosen = sorted((*names, "InternalError"), key=lambda name: _ERROR_RESPONSES[name][0])
    return {
        str(_ERROR_RESPONSES[name][0]): {"$ref": f"#/components/responses/{name}"}
        for name in chosen
    }


#: name -> (status, description) of the error responses.
_ERROR_RESPONSES: Final[dict[str, tuple[int, str]]] = {
    "BadRequest": (
        400,
        "The request or its envelope is not acceptable: `BadRequest` (bad JSON, a missing or "
        "mistyped field, an envelope of the wrong kind for the route), `MalformedEnvelope`, "
        "`BadSignature`, `EnvelopeExpired`, `EnvelopeNotYetValid`, `EnvelopeTooLarge`.",
    ),
    "Forbidden": (
        403,
        "`Unauthorized`: the sender may not invoke the behaviour on the node; the detail is "
        "the trust context's reason.",
    ),
    "NotFound": (404, "`UnknownActor` or `UnknownBehaviour` at the destination node."),
    "Conflict": (
        409,
        "`EnvelopeReplayed`: this node accepted an envelope with this sender and id before; "
        "sign a new one.",
    ),
    "PayloadTooLarge": (413, "`RequestEntityTooLarge`: the request body is over 2 MiB."),
    "Unprocessable": (
        422,
        "The behaviour raised: `error` is its exception type, `detail` its message.",
    ),
    "TooManyRequests": (
        429,
        "`Busy`: the destination refused the message for now (full mailbox, rate or "
        "concurrency limit); try again after `Retry-After` seconds.",
    ),
    "BadGateway": (
        502,
        "`Unreachable` (or a transport error): the node could not pass the envelope on.",
    ),
    "GatewayTimeout": (
        504,
        "`InvokeTimeout`: no reply (or no way to the peer) within the timeout.",
    ),
    "Unavailable": (503, "`Unavailable`: this node does not provide this (see the detail)."),
    "DeploymentBadRequest": (
        400,
        "`BadRequest`: bad JSON, an unknown, missing or mistyped field, or an invalid ensemble; "
        "for an invalid ensemble `errors` lists every problem (path, line, message).",
    ),
    "CrossOrigin": (
        403,
        "`Unauthorized`: `rest.unsigned_writes` is off (the default; deploy through the signed "
        "gateway, as `dmsnode deploy` does); or `CrossOrigin`: the request carries `Origin` (a "
        "browser sent it for a web page); send it from a program.",
    ),
    "UnknownDeployment": (
        404,
        "`UnknownDeployment`: this node orchestrates no deployment with this id (for `logs` "
        "with `allocation`, `UnknownAllocation`: the deployment has no output from that "
        "allocation).",
    ),
    "DeploymentConflict": (
        409,
        "`DeploymentError`: the deployment is not in a state that allows this (only a "
        "Completed or Failed deployment is deleted: shut it down first).",
    ),
    "UnsupportedMediaType": (
        415,
        "`UnsupportedMediaType`: the body is neither JSON (`application/json`) nor YAML "
        "(`application/yaml`, `text/yaml`).",
    ),
    "InternalError": (500, "`InternalError`: an unexpected failure, logged by the node."),
}


#: Error responses whose body has more than the ``Error`` shape: name -> schema.
_ERROR_SCHEMAS: Final = {"DeploymentBadRequest": "InvalidEnsemble"}


def _error_responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for name, (status, description) in _ERROR_RESPONSES.items():
        response = _json(_ref(_ERROR_SCHEMAS.get(name, "Error")), description)
        if status == 429:
            response["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "schema": {"type": "integer", "minimum": 1},
                }
            }
        responses[name] = response
    return responses


def _schemas() -> dict[str, Any]:
    nullable_number = {"type": ["number", "null"]}
    return {
        "Error": {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": {"type": "string", "description": "The error's type, e.g. BadSignature."},
                "detail": {"type": "string", "description": "What was wrong and what to do."},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "did"],
            "properties": {"status": {"const": "ok"}, "did": {"type": "string"}},
        },
        "Handle": {
            "type": "object",
            "required": ["did", "actor"],
            "properties": {
                "did": {"type": "string", "description": "The node's did:key."},
                "actor": {"type": "string", "description": "The root actor's inbox, `root`."},
            },
        },
        "EnvelopeRequest": {
            "type": "object",
            "required": ["envelope"],
            "properties": {
                "envelope": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "description": "Base64 (standard, padded) of the encoded signed envelope "
                    "`[body, sig]`, at most 1 MiB decoded.",
                }
            },
        },
        "InvokeRequest": {
            "type": "object",
            "required": ["envelope"],
            "properties": {
                "envelope": {
                    "type": "string",
                    "contentEncoding": "base64",
                    "description": "Base64 of the signed envelope; its `re` must be "
                    "`{did: <this node>, actor: system, beh: /nuactor/reply}`.",
                },
                "timeout": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 300,
                    "default": 30,
                    "description": "Seconds to wait for the reply.",
                },
            },
        },
        "Accepted": {
            "type": "object",
            "required": ["accepted", "id"],
            "properties": {
                "accepted": {"const": True},
                "id": {
                    "type": "string",
                    "pattern": "^[0-9a-f]{32}$",
                    "description": "The envelope's id, hex.",
                },
            },
        },
        "InvokeResult": {
            "type": "object",
            "required": ["result"],
            "properties": {"result": {"description": "The behaviour's reply value."}},
        },
        "Status": {
            "type": "object",
            "required": ["did", "version", "uptime_s"],
            "properties": {
                "did": {"type": "string"},
                "version": {"type": "string"},
                "uptime_s": {"type": "number"},
                "addresses": {"type": "array", "items": {"type": "string"}},
                "api": {"type": ["string", "null"]},
                "peers": {
                    "type": "object",
                    "properties": {
                        "known": {"type": "integer"},
                        "connected": {"type": "integer"},
                    },
                },
                "actors": {"type": "array", "items": {"type": "string"}},
                "counters": {"type": "object", "additionalProperties": {"type": "integer"}},
                "behaviours": {"type": "array", "items": {"type": "string"}},
                "hellos": {
                    "type": "object",
                    "additionalProperties": {"type": "number"},
                    "description": "DID -> Unix time of its last hello on /nunet/hello.",
                },
                "plugins": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "behaviours": {"type": "array", "items": {"type": "string"}},
                            "error": {"type": ["string", "null"]},
                        },
                    },
                },
            },
        },
        "Peer": {
            "type": "object",
            "required": ["did", "addresses", "connected"],
            "properties": {
                "did": {"type": "string"},
                "addresses": {"type": "array", "items": {"type": "string"}},
                "connected": {"type": "boolean"},
                "rtt_ms": nullable_number,
                "last_seen": nullable_number,
            },
        },
        "Capability": {
            "type": "object",
            "required": ["kind", "cid", "iss", "aud", "sub", "cmd", "revoked"],
            "properties": {
                "kind": {"type": "string", "enum": ["root", "require", "provide"]},
                "cid": {"type": "string"},
                "iss": {"type": "string"},
                "aud": {"type": "string"},
                "sub": {"type": ["string", "null"]},
                "cmd": {"type": "string"},
                "exp": {"type": ["integer", "null"]},
                "revoked": {"type": "boolean"},
            },
        },
        "Event": {
            "type": "object",
            "required": ["id", "ts_ms", "kind", "level"],
            "properties": {
                "id": {"type": "integer"},
                "ts_ms": {"type": "integer"},
                "kind": {"type": "string"},
                "level": {"type": "string"},
                "data": {"description": "The event's details."},
            },
        },
        "Events": {
            "type": "object",
            "required": ["events", "next_since"],
            "properties": {
                "events": {"type": "array", "items": _ref("Event")},
                "next_since": {
                    "type": ["integer", "null"],
                    "description": "Pass as `since` to get the events after these.",
                },
            },
        },
        **_deployment_schemas(),
    }


_STATES: Final = [
    "Preparing",
    "Committing",
    "Provisioning",
    "Running",
    "Failed",
    "ShuttingDown",
    "Completed",
]


def _deployment_schemas() -> dict[str, Any]:
    time = {"type": "number", "description": "Unix time, seconds."}
    summary_properties = {
        "id": {"type": "string", "description": "The deployment's id, `d` and 16 hex digits."},
        "state": {"type": "string", "enum": _STATES},
        "reason": {
            "type": "string",
            "description": "Why it failed, or what placement still lacks (empty otherwise).",
        },
        "created_at": time,
        "updated_at": time,
        "deadline": {
            "type": "number",
            "description": "Unix time by which it must run, or it fails.",
        },
        "nodes": {"type": "integer", "description": "Nodes in the ensemble."},
        "allocations": {"type": "integer", "description": "Allocations in the ensemble."},
        "description": {"type": "string", "description": "The ensemble's metadata.description."},
    }
    summary_required = list(summary_properties)
    allocation = {
        "type": "object",
        "properties": {
            "state": {
                "type": ["string", "null"],
                "description": "pending, starting, running, completed, failed, stopped.",
            },
            "exit_code": {"type": ["integer", "null"]},
            "reason": {"type": ["string", "null"]},
            "healthy": {"type": ["boolean", "null"]},
            "restarts": {"type": ["integer", "null"]},
        },
    }
    history = {
        "type": "object",
        "required": ["time", "state", "text"],
        "properties": {"time": time, "state": {"type": "string"}, "text": {"type": "string"}},
    }
    return {
        "DeploymentRequest": {
            "type": "object",
            "required": ["ensemble"],
            "additionalProperties": False,
            "properties": {
                "ensemble": {
                    "type": ["string", "object"],
                    "description": "The ensemble: its YAML text (NuNet v1, see "
                    "docs/ensembles.md), or the same as a JSON object.",
                },
                "timeout": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "description": "Seconds it may take to run, or it fails (default: the "
                    "node's orchestrator.deployment_timeout_s).",
                },
            },
        },
        "DeploymentSummary": {
            "type": "object",
            "required": summary_required,
            "properties": summary_properties,
        },
        "DeploymentStatus": {
            "type": "object",
            "required": [*summary_required, "bids", "history"],
            "properties": {
                **summary_properties,
                "nodes": {
                    "type": "object",
                    "description": "Slot (node, or redundant copy) -> where it is (here the "
                    "map replaces the summary's count).",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "provider": {"type": ["string", "null"]},
                            "state": {"type": ["string", "null"]},
                            "ports": {"type": "array", "items": {"type": "object"}},
                            "allocations": {
                                "type": "object",
                                "additionalProperties": allocation,
                            },
                        },
                    },
                },
                "bids": {"type": "integer", "description": "Bids received so far."},
                "history": {
                    "type": "array",
                    "items": history,
                    "description": "The latest 20 entries, oldest first.",
                },
            },
        },
        "DeploymentManifest": {
            "type": "object",
            "required": ["id", "state"],
            "description": "The orchestrator's record: every slot with its provider, signed "
            "bid and allocations; the latest round's refusals and rejected bids with their "
            "reasons; the history.",
            "properties": {
                "id": {"type": "string"},
                "state": {"type": "string", "enum": _STATES},
                "nodes": {"type": "object"},
                "bids": {"type": "integer"},
                "refusals": {"type": "array", "items": {"type": "object"}},
                "rejections": {"type": "array", "items": {"type": "object"}},
                "history": {"type": "array", "items": history},
            },
        },
        "DeploymentLogs": {
            "type": "object",
            "required": ["id", "state", "logs"],
            "properties": {
                "id": {"type": "string"},
                "state": {"type": "string", "enum": _STATES},
                "logs": {
                    "type": "object",
                    "description": "`slot/allocation` -> its lines, oldest first.",
                    "additionalProperties": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["stream", "time", "text"],
                            "properties": {
                                "stream": {"type": "string", "enum": ["stdout", "stderr"]},
                                "time": time,
                                "text": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "Deleted": {
            "type": "object",
            "required": ["deleted"],
            "properties": {"deleted": {"type": "string", "description": "The id deleted."}},
        },
        "InvalidEnsemble": {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": {"const": "BadRequest"},
                "detail": {"type": "string", "description": "What was wrong and what to do."},
                "errors": {
                    "type": "array",
                    "description": "For an invalid ensemble: every problem in it.",
                    "items": {
                        "type": "object",
                        "required": ["path", "line", "message"],
                        "properties": {
                            "path": {
                                "type": "string",
                                "description": "Where: allocations.web.resources.ram.size.",
                            },
                            "line": {"type": ["integer", "null"]},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        },
    }


def _envelope_post(
    operation_id: str, summary: str, description: str, request: str, ok: dict[str, Any]
) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "tags": ["gateway"],
            "summary": summary,
            "description": description,
            "requestBody": {
                "required": True,
                "content": {_JSON: {"schema": _ref(request)}},
            },
            "responses": ok,
        }
    }


def _get(
    operation_id: str,
    tag: str,
    summary: str,
    ok: dict[str, Any],
    *errors: str,
    parameters: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        "responses": {"200": ok, **_errors(*errors)},
    }
    if parameters:
        operation["parameters"] = parameters
    return {"get": operation}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _deployment_paths() -> dict[str, Any]:
    id_parameter = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "The deployment's id.",
    }
    read_errors = ("Unprocessable", "TooManyRequests", "Unavailable", "GatewayTimeout")
    one_errors = ("UnknownDeployment", *read_errors)

    def operation(
        operation_id: str, summary: str, ok: dict[str, Any], *errors: str, **more: Any
    ) -> dict[str, Any]:
        status = more.pop("status", "200")
        return {
            "operationId": operation_id,
            "tags": ["deployments"],
            "summary": summary,
            **more,
            "responses": {status: ok, **_errors(*errors)},
        }

    summary = _ref("DeploymentSummary")
    return {
        "/api/v1/deployments": {
            "get": operation(
                "deploymentList",
                "Every deployment this node orchestrates",
                _json({"type": "array", "items": summary}, "Their summaries."),
                *read_errors,
            ),
            "post": operation(
                "deploymentNew",
                "Deploy an ensemble",
                {
                    **_json(summary, "Created (saved; placement goes on): its summary."),
                    "headers": {
                        "Location": {
                            "description": "The deployment's status: /api/v1/deployments/{id}.",
                            "schema": {"type": "string"},
                        }
                    },
                },
                "DeploymentBadRequest",
                "CrossOrigin",
                "PayloadTooLarge",
                "UnsupportedMediaType",
                *read_errors,
                status="201",
                description="The ensemble is checked first: an invalid one is refused with "
                "every problem in it. The deployment is then saved and driven: bids, two-phase "
                "commit, start in depends_on waves, supervision (follow it with GET "
                "/api/v1/deployments/{id}). Send JSON, or the ensemble's YAML itself with "
                "`Content-Type: application/yaml` (and `?timeout=`).",
                parameters=[
                    _query(
                        "timeout",
                        {"type": "number", "exclusiveMinimum": 0},
                        "With a YAML body: seconds it may take to run, or it fails.",
                    )
                ],
                requestBody={
                    "required": True,
                    "content": {
                        _JSON: {"schema": _ref("DeploymentRequest")},
                        "application/yaml": {"schema": {"type": "string"}},
                    },
                },
            ),
        },
        "/api/v1/deployments/{id}": {
            "get": operation(
                "deploymentStatus",
                "A deployment's status",
                _json(
                    _ref("DeploymentStatus"),
                    "Its summary, every slot's provider, state, ports and allocations, the "
                    "bids received and its recent history.",
                ),
                *one_errors,
                parameters=[id_parameter],
            ),
            "delete": operation(
                "deploymentDelete",
                "Delete a Completed or Failed deployment",
                _json(_ref("Deleted"), "Deleted, with the output kept of it."),
                "CrossOrigin",
                "DeploymentConflict",
                *one_errors,
                parameters=[id_parameter],
            ),
        },
        "/api/v1/deployments/{id}/manifest": {
            "get": operation(
                "deploymentManifest",
                "A deployment's manifest",
                _json(_ref("DeploymentManifest"), "The orchestrator's record of it."),
                *one_errors,
                parameters=[id_parameter],
            )
        },
        "/api/v1/deployments/{id}/logs": {
            "get": operation(
                "deploymentLogs",
                "A deployment's output",
                _json(
                    _ref("DeploymentLogs"),
                    "Every allocation's lines: asked of its provider while it runs, as kept "
                    "by this node once it is over.",
                ),
                *one_errors,
                parameters=[
                    id_parameter,
                    _query(
                        "allocation",
                        {"type": "string"},
                        "Only this allocation's output (its name, or `slot/name`).",
                    ),
                ],
            )
        },
        "/api/v1/deployments/{id}/shutdown": {
            "post": operation(
                "deploymentShutdown",
                "Shut a deployment down",
                _json(
                    summary,
                    "Accepted: ShuttingDown is saved; it ends Completed once everything is "
                    "stopped and released (an ended deployment is answered as it is).",
                ),
                "CrossOrigin",
                *one_errors,
                status="202",
                description="A body, if any, is ignored.",
                parameters=[id_parameter],
            )
        },
    }


def _paths() -> dict[str, Any]:
    handle = {
        "tags": ["gateway"],
        "summary": "The handle of this node's root actor",
        "description": "What a client addresses envelopes to (`to`), and whose DID an "
        "invoke's `re.did` must name. A POST body, if any, is ignored.",
        "responses": {"200": _json(_ref("Handle"), "The root actor's handle."), **_errors()},
    }
    return {
        "/health": _get(
            "health", "node", "Liveness", _json(_ref("Health"), "The API answers for this node.")
        ),
        "/api/v1/actor/handle": {
            "get": {"operationId": "actorHandle", **handle},
            "post": {"operationId": "actorHandlePost", **handle},
        },
        "/api/v1/actor/send": _envelope_post(
            "actorSend",
            "Send an envelope (fire and forget)",
            "Delivers the envelope here or forwards it to `to.did`. 202 means it was accepted "
            "and is on its way, not that it was authorised or handled: a refusal at delivery "
            "is logged by the receiving node, not told. An envelope with `re` set is refused "
            "(post it to /api/v1/actor/invoke), as is one with `topic` set.",
            "EnvelopeRequest",
            {
                "202": _json(_ref("Accepted"), "Accepted for delivery."),
                **_errors(
                    "BadRequest", "Conflict", "PayloadTooLarge", "BadGateway", "GatewayTimeout"
                ),
            },
        ),
        "/api/v1/actor/invoke": _envelope_post(
            "actorInvoke",
            "Invoke a behaviour and wait for its reply",
            "Delivers the envelope here or forwards it to `to.did`, and waits up to `timeout` "
            "seconds for the reply. The envelope's `re` must name this node (see "
            "/api/v1/actor/handle). The reply's value is the result; a failed reply is an "
            "error response whose status says what kind of failure it was.",
            "InvokeRequest",
            {
                "200": _json(_ref("InvokeResult"), "The behaviour's reply."),
                **_errors(
                    "BadRequest",
                    "Forbidden",
                    "NotFound",
                    "Conflict",
                    "PayloadTooLarge",
                    "Unprocessable",
                    "TooManyRequests",
                    "BadGateway",
                    "GatewayTimeout",
                ),
            },
        ),
        "/api/v1/actor/broadcast": _envelope_post(
            "actorBroadcast",
            "Broadcast an envelope on its topic",
            "Gossips the envelope (which must have `topic`) to this node's neighbours, and "
            "delivers it here if this node subscribes to the topic.",
            "EnvelopeRequest",
            {
                "202": _json(_ref("Accepted"), "Accepted for gossip."),
                **_errors("BadRequest", "PayloadTooLarge"),
            },
        ),
        "/api/v1/node/status": _get(
            "nodeStatus",
            "node",
            "The node's full status",
            _json(_ref("Status"), "Identity, version, uptime, addresses, peers, counters."),
        ),
        "/api/v1/peers": _get(
            "peers",
            "node",
            "Every known peer, connected ones first",
            _json({"type": "array", "items": _ref("Peer")}, "The peer table."),
        ),
        "/api/v1/capabilities": _get(
            "capabilities",
            "node",
            "The trust context's anchors",
            _json(
                {"type": "array", "items": _ref("Capability")}, "Root, require and provide anchors."
            ),
        ),
        "/api/v1/events": _get(
            "events",
            "observability",
            "The node's event log, in id order",
            _json(
                _ref("Events"),
                "With `since`, the first `limit` events after it; without, the newest `limit`.",
            ),
            "BadRequest",
            "Unavailable",
            parameters=[
                _query(
                    "since",
                    {"type": "integer", "minimum": 0},
                    "Only events with a larger id (a cursor: pass the last `next_since`).",
                ),
                _query("kind", {"type": "string"}, "Only events of this kind."),
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    "At most this many events.",
                ),
            ],
        ),
        "/metrics": _get(
            "metrics",
            "observability",
            "Prometheus metrics",
            {
                "description": "Prometheus text exposition format 0.0.4.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "Unavailable",
        ),
        **_deployment_paths(),
        "/api/v1/openapi.json": _get(
            "openapi",
            "meta",
            "This document",
            _json({"type": "object"}, "The OpenAPI 3.1 document of this API."),
        ),
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (a new copy on each call)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dmsnode REST API",
            "version": __version__,
            "description": _DESCRIPTION,
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [
            {"url": "http://127.0.0.1:9999", "description": "The default rest.addr:rest.port"}
        ],
        "tags": [
            {"name": "gateway", "description": "NuNet's actor gateway: signed envelopes."},
            {"name": "node", "description": "The node's own state, read-only."},
            {"name": "observability", "description": "Events and metrics."},
            {
                "name": "deployments",
                "description": "The orchestrator: deploy ensembles, follow and stop them.",
            },
            {"name": "meta", "description": "About the API itself."},
        ],
        "paths": _paths(),
        "components": {"schemas": _schemas(), "responses": _error_responses()},
    }
