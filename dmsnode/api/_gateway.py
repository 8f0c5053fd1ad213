"""NuNet's actor gateway, ``/api/v1/actor/*``: a local client's signed envelopes, relayed.

The client signs; the node checks the envelope like any inbound one
(:meth:`nuactor.ActorSystem.relay`): size, signature, expiry, replay, then admission and
authorisation on delivery. The gateway adds only what HTTP needs: the envelope's kind must fit
the route (a ``send`` asks for no reply, an ``invoke`` asks for one here, a ``broadcast`` has
a topic), and every refusal and failure gets a status code (:func:`relay_problem`,
:func:`outcome_problem`).
"""

from __future__ import annotations

import base64
import binascii
import math
from typing import TYPE_CHECKING, Any, Final

from quart import Blueprint, Response

from nuactor import Envelope
from nuactor.errors import (
    EnvelopeError,
    EnvelopeReplayed,
    InvokeTimeout,
    NuactorError,
    Unreachable,
)
from nuactor.transport import TransportError

from ..node import ROOT_ACTOR
from ._body import bad_request, json_body, json_type
from ._responses import ApiProblem, json_response

if TYPE_CHECKING:
    from nuactor._outcome import Outcome  # what relay returns; not re-exported by nuactor

    from ..node import Node

__all__ = [
    "DEFAULT_INVOKE_TIMEOUT",
    "MAX_INVOKE_TIMEOUT",
    "gateway_blueprint",
    "outcome_problem",
    "relay_problem",
]

DEFAULT_INVOKE_TIMEOUT: Final = 30.0
MAX_INVOKE_TIMEOUT: Final = 300.0

_SEND_EXAMPLE: Final = '{"envelope": "<base64 of the signed envelope>"}'
_INVOKE_EXAMPLE: Final = '{"envelope": "<base64 of the signed envelope>", "timeout": 30}'

#: Failures a reply can carry that are refusals, not the behaviour raising (that is 422).
_OUTCOME_STATUS: Final = {
    "Unauthorized": 403,
    "UnknownActor": 404,
    "UnknownBehaviour": 404,
    "Busy": 429,
}


def gateway_blueprint(node: Node) -> Blueprint:
    """The gateway routes, relaying through ``node``'s actor system."""
    bp = Blueprint("gateway", __name__)

    @bp.route("/api/v1/actor/handle", methods=["GET", "POST"])
    async def handle() -> Response:
        """The handle a client addresses this node's root actor by."""
        return json_response({"did": node.did, "actor": ROOT_ACTOR})

    @bp.post("/api/v1/actor/send")
    async def send() -> Response:
        """Deliver or forward a fire-and-forget envelope; 202 once it is on its way."""
        _, data, envelope = await _read(node, _SEND_EXAMPLE)
        if envelope.topic is not None:
            raise _wrong_route("is a broadcast ('topic' is set)", "/api/v1/actor/broadcast")
        if envelope.re is not None:
            raise _wrong_route("asks for a reply ('re' is set)", "/api/v1/actor/invoke")
        await _relay(node, data, DEFAULT_INVOKE_TIMEOUT)
        return json_response({"accepted": True, "id": envelope.id.hex()}, 202)

    @bp.post("/api/v1/actor/broadcast")
    async def broadcast() -> Response:
        """Gossip an envelope on its topic (delivered here too if this node subscribes)."""
        _, data, envelope = await _read(node, _SEND_EXAMPLE)
        if envelope.topic is None:
            raise bad_request(
                "a broadcast envelope needs a 'topic' (e.g. /nunet/hello); to reach one node, "
                "post it to /api/v1/actor/send or /api/v1/actor/invoke"
            )
        await _relay(node, data, DEFAULT_INVOKE_TIMEOUT)
        return json_response({"accepted": True, "id": envelope.id.hex()}, 202)

    @bp.post("/api/v1/actor/invoke")
    async def invoke() -> Response:
        """Deliver or forward an envelope and wait for its reply."""
        body, data, envelope = await _read(node, _INVOKE_EXAMPLE)
        timeout = _timeout(body)
        if envelope.topic is not None:
            raise _wrong_route("is a broadcast ('topic' is set)", "/api/v1/actor/broadcast")
        if envelope.re is None:
            raise bad_request(
                "an invoke must ask for its reply here: build the envelope with 're' = "
                f"{{did: {node.did}, actor: 'system', beh: '/nuactor/reply'}}, or post it to "
                "/api/v1/actor/send"
            )
        outcome = await _relay(node, data, timeout)
        if outcome is None:  # relay answers every envelope that has 're': keep that promise
            raise RuntimeError("the actor system gave no outcome for an invoke")
        if not outcome.ok:
            raise outcome_problem(outcome)
        return json_response({"result": outcome.value})

    return bp


async def _read(node: Node, example: str) -> tuple[dict[str, Any], bytes, Envelope]:
    """The JSON body, the envelope's bytes, and a look at its fields (checked for shape, size
    and time, but not yet for its signature: relay verifies that, once)."""
    body = await json_body(example)
    if "envelope" not in body:
        raise bad_request(f"'envelope' is missing: send {example}")
    text = body["envelope"]
    if not isinstance(text, str):
        raise bad_request(
            f"'envelope' must be a string (base64 of the signed envelope), got {json_type(text)}"
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("'envelope' is not valid base64 (standard alphabet, padded)") from None
    if not data:
        raise bad_request("'envelope' is empty: send the base64 of a signed envelope")
    try:
        envelope = Envelope.decode(
            data, max_size=node.system.config.max_envelope_size, verify_signature=False
        )
    except EnvelopeError as exc:
        raise relay_problem(exc) from None
    return body, data, envelope


def _timeout(body: dict[str, Any]) -> float:
    """The invoke's ``timeout`` in seconds: optional, a number in (0, 300]."""
    value = body.get("timeout")
    if value is None:
        return DEFAULT_INVOKE_TIMEOUT
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"'timeout' must be a number of seconds, got {json_type(value)}")
    if not math.isfinite(value) or value <= 0 or value > MAX_INVOKE_TIMEOUT:
        raise bad_request(
            f"'timeout' must be more than 0 and at most {MAX_INVOKE_TIMEOUT:g} seconds, got {value}"
        )
    return float(value)


async def _relay(node: Node, data: bytes, timeout: float) -> Outcome | None:
    try:
        return await node.system.relay(data, timeout=timeout)
    except NuactorError as exc:
        raise relay_problem(exc) from None


def _wrong_route(what: str, route: str) -> ApiProblem:
    return bad_request(f"this envelope {what}: post it to {route}")


def relay_problem(exc: NuactorError) -> ApiProblem:
    """The response for an envelope the node refused, or could not pass on."""
    name = type(exc).__name__
    if isinstance(exc, EnvelopeReplayed):
        return ApiProblem(409, name, f"{exc}: sign a new envelope (a fresh id) to ask again")
    if isinstance(exc, EnvelopeError):
        return ApiProblem(400, name, f"{exc}")
    if isinstance(exc, InvokeTimeout):
        return ApiProblem(504, name, f"{exc}: the peer may be slow or gone; try again later")
    if isinstance(exc, Unreachable | TransportError):
        return ApiProblem(
            502, name, f"{exc}: connect to the peer first (dmsnode peers connect) or check it runs"
        )
    return ApiProblem(502, name, str(exc))


def outcome_problem(outcome: Outcome) -> ApiProblem:
    """The response for a failed reply: a refusal's own status, else 422 (the behaviour
    raised; the error is its exception type)."""
    status = _OUTCOME_STATUS.get(outcome.error_type, 422)
    headers = {}
    if status == 429:
        retry_after = outcome.retry_after if outcome.retry_after is not None else 1.0
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return ApiProblem(status, outcome.error_type, outcome.message, headers=headers)
