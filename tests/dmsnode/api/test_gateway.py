"""The actor gateway over a real socket: envelopes a client signed, relayed by the node."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from nuactor import Identity
from nuactor._envelope import now_ms

from .conftest import Api, Notes, b64, envelope, running_node

INVOKE = "/api/v1/actor/invoke"
SEND = "/api/v1/actor/send"
BROADCAST = "/api/v1/actor/broadcast"


def invoke_body(api: Api, beh: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
    signer = kwargs.pop("signer", api.user)
    to = kwargs.pop("to", api.node.did)
    reply_to = kwargs.pop("reply_to", api.node.did)
    return {"envelope": b64(envelope(signer, to, beh, body, reply_to=reply_to, **kwargs))}


async def test_handle_names_the_root_actor(api: Api) -> None:
    for method in ("GET", "POST"):
        reply = await api.client.request(method, "/api/v1/actor/handle")
        assert reply.status == 200
        assert reply.json() == {"did": api.node.did, "actor": "root"}


async def test_invoke_returns_the_result(api: Api) -> None:
    reply = await api.client.post(INVOKE, invoke_body(api, "/dms/test/echo", [1, "two"]))
    assert reply.status == 200
    assert reply.json() == {"result": {"echo": [1, "two"], "caller": api.user.did}}


async def test_invoke_of_a_node_behaviour(api: Api) -> None:
    reply = await api.client.post(INVOKE, invoke_body(api, "/dms/node/status"))
    assert reply.status == 200
    assert reply.json()["result"]["did"] == api.node.did


async def test_bytes_in_a_reply_are_base64(api: Api) -> None:
    reply = await api.client.post(INVOKE, invoke_body(api, "/dms/test/echo", b"\x00\xff"))
    assert reply.json()["result"]["echo"] == "AP8="


async def test_invoke_unauthorized_is_403_with_the_reason(api: Api) -> None:
    stranger = Identity.generate()
    reply = await api.client.post(INVOKE, invoke_body(api, "/dms/test/echo", signer=stranger))
    assert reply.status == 403
    error = reply.json()
    assert error["error"] == "Unauthorized"
    assert f"no delegation for /dms/test/echo from {stranger.did}" in error["detail"]


async def test_invoke_of_an_unknown_behaviour_is_404(api: Api) -> None:
    reply = await api.client.post(INVOKE, invoke_body(api, "/dms/test/nothing"))
    assert reply.status == 404
    assert reply.json()["error"] == "UnknownBehaviour"
    assert "/dms/test/nothing" in reply.json()["detail"]


async def test_a_behaviour_that_raises_is_422_with_its_type(api: Api) -> None:
    reply = await api.client.post(INVOKE, invoke_body(api, "/dms/test/fail", "x"))
    assert reply.status == 422
    assert reply.json() == {"error": "ValueError", "detail": "cannot do 'x'"}


async def test_no_reply_in_time_is_504(api: Api) -> None:
    body = invoke_body(api, "/dms/test/hang") | {"timeout": 0.2}
    reply = await api.client.post(INVOKE, body)
    assert reply.status == 504
    assert reply.json()["error"] == "InvokeTimeout"


async def test_unreachable_destination_is_502(api: Api) -> None:
    nowhere = Identity.generate().did
    reply = await api.client.post(INVOKE, invoke_body(api, "/dms/test/echo", to=nowhere))
    assert reply.status == 502
    assert reply.json()["error"] == "Unreachable"
    assert nowhere in reply.json()["detail"]


async def test_send_is_accepted_and_the_behaviour_runs(api: Api) -> None:
    data = envelope(api.user, api.node.did, "/dms/test/note", {"n": 7})
    reply = await api.client.post(SEND, {"envelope": b64(data)})
    assert reply.status == 202
    accepted = reply.json()
    assert accepted["accepted"] is True
    assert len(accepted["id"]) == 32
    assert await api.notes.wait_for(1) == [{"n": 7}]


async def test_broadcast_is_accepted(api: Api) -> None:
    data = envelope(api.user, "*", "/broadcast/hello", None, topic="/nunet/hello")
    reply = await api.client.post(BROADCAST, {"envelope": b64(data)})
    assert reply.status == 202
    assert reply.json()["accepted"] is True


async def test_a_replayed_envelope_is_409(api: Api) -> None:
    body = invoke_body(api, "/dms/test/echo", 1)
    assert (await api.client.post(INVOKE, body)).status == 200
    reply = await api.client.post(INVOKE, body)
    assert reply.status == 409
    assert reply.json()["error"] == "EnvelopeReplayed"
    assert "sign a new envelope" in reply.json()["detail"]


async def test_a_tampered_envelope_is_400(api: Api) -> None:
    data = bytearray(envelope(api.user, api.node.did, "/dms/test/echo", 1, reply_to=api.node.did))
    data[-1] ^= 1
    reply = await api.client.post(INVOKE, {"envelope": b64(bytes(data))})
    assert reply.status == 400
    assert reply.json()["error"] == "BadSignature"


async def test_an_expired_envelope_is_400(api: Api) -> None:
    body = invoke_body(api, "/dms/test/echo", now=now_ms() - 600_000, ttl_ms=1000)
    reply = await api.client.post(INVOKE, body)
    assert reply.status == 400
    assert reply.json()["error"] == "EnvelopeExpired"


async def test_garbage_is_a_malformed_envelope(api: Api) -> None:
    reply = await api.client.post(INVOKE, {"envelope": b64(b"\x92\xc4\x01")})
    assert reply.status == 400
    assert reply.json()["error"] == "MalformedEnvelope"


async def test_an_invoke_must_ask_for_its_reply_here(api: Api) -> None:
    other = Identity.generate().did
    reply = await api.client.post(INVOKE, invoke_body(api, "/dms/test/echo", reply_to=other))
    assert reply.status == 400
    assert reply.json()["error"] == "MalformedEnvelope"
    assert "'re.did' must be" in reply.json()["detail"]

    no_reply = envelope(api.user, api.node.did, "/dms/test/note", 1)
    reply = await api.client.post(INVOKE, {"envelope": b64(no_reply)})
    assert reply.status == 400
    assert reply.json()["error"] == "BadRequest"
    assert "/api/v1/actor/send" in reply.json()["detail"]
    assert api.notes.items == []  # refused before delivery


async def test_envelopes_must_fit_the_route(api: Api) -> None:
    asks = envelope(api.user, api.node.did, "/dms/test/note", 1, reply_to=api.node.did)
    reply = await api.client.post(SEND, {"envelope": b64(asks)})
    assert reply.status == 400
    assert "/api/v1/actor/invoke" in reply.json()["detail"]

    gossip = envelope(api.user, "*", "/broadcast/hello", None, topic="/nunet/hello")
    for route in (SEND, INVOKE):
        reply = await api.client.post(route, {"envelope": b64(gossip)})
        assert reply.status == 400
        assert BROADCAST in reply.json()["detail"]

    direct = envelope(api.user, api.node.did, "/dms/test/note", 1)
    reply = await api.client.post(BROADCAST, {"envelope": b64(direct)})
    assert reply.status == 400
    assert "'topic'" in reply.json()["detail"]
    await trio.testing.wait_all_tasks_blocked()
    assert api.notes.items == []


async def test_the_invoke_timeout_is_checked(api: Api) -> None:
    for timeout, says in (
        (0, "more than 0"),
        (301, "at most 300"),
        ("5", "a number"),
        (True, "a number"),
    ):
        body = invoke_body(api, "/dms/test/echo") | {"timeout": timeout}
        reply = await api.client.post(INVOKE, body)
        assert reply.status == 400, timeout
        assert reply.json()["error"] == "BadRequest"
        assert "'timeout'" in reply.json()["detail"]
        assert says in reply.json()["detail"]


async def test_the_envelope_field_is_checked(api: Api) -> None:
    cases: list[tuple[Any, str]] = [
        ({}, "'envelope' is missing"),
        ({"envelope": 5}, "'envelope' must be a string"),
        ({"envelope": "not base64!"}, "not valid base64"),
        ({"envelope": ""}, "'envelope' is empty"),
    ]
    for body, says in cases:
        reply = await api.client.post(SEND, body)
        assert reply.status == 400, body
        assert reply.json()["error"] == "BadRequest"
        assert says in reply.json()["detail"]


async def test_invoke_relayed_to_a_second_node(api: Api) -> None:
    notes = Notes()
    async with running_node(api.user, notes) as other:
        did = await api.node.network.connect(other.network.addresses[0])
        assert did == other.did
        reply = await api.client.post(
            INVOKE, invoke_body(api, "/dms/test/echo", "far", to=other.did)
        )
        assert reply.status == 200
        assert reply.json() == {"result": {"echo": "far", "caller": api.user.did}}
        assert api.node.system.counters["envelopes_relayed"] == 1

        send = envelope(api.user, other.did, "/dms/test/note", "there")
        assert (await api.client.post(SEND, {"envelope": b64(send)})).status == 202
        assert await notes.wait_for(1) == ["there"]


async def test_the_second_node_decides_authorisation(api: Api) -> None:
    """The user is root on both nodes, but a stranger only reaches the second through the
    first's gateway: the second node refuses it, and the gateway says so."""
    stranger = Identity.generate()
    async with running_node(api.user) as other:
        await api.node.network.connect(other.network.addresses[0])
        body = invoke_body(api, "/dms/test/echo", to=other.did, signer=stranger)
        reply = await api.client.post(INVOKE, body)
        assert reply.status == 403
        assert stranger.did in reply.json()["detail"]
