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
    "InternalError": (500, "`InternalError`: an unexpected failure, logged by the node."),
}


def _error_responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for name, (status, description) in _ERROR_RESPONSES.items():
        response = _json(_ref("Error"), description)
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
            {"name": "meta", "description": "About the API itself."},
        ],
        "paths": _paths(),
        "components": {"schemas": _schemas(), "responses": _error_responses()},
    }
