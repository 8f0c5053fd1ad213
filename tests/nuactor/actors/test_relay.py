"""ActorSystem.relay: envelopes a local client signed, checked and delivered or forwarded."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from nuactor import (
    Actor,
    ActorSystem,
    Context,
    Envelope,
    Handle,
    Identity,
    MemoryNetwork,
    ReplyTo,
    TrustContext,
    behaviour,
)
from nuactor._system import REPLY_BEHAVIOUR
from nuactor.errors import BadSignature, EnvelopeReplayed, MalformedEnvelope

NODE_A = Identity.from_seed(bytes([21]) * 32)
NODE_B = Identity.from_seed(bytes([22]) * 32)
USER = Identity.from_seed(bytes([23]) * 32)


class Echo(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Any] = []

    @behaviour("/dms/echo")
    async def echo(self, ctx: Context, body: Any) -> Any:
        return {"echo": body, "caller": ctx.sender}

    @behaviour("/dms/note")
    async def note(self, ctx: Context, body: Any) -> None:
        self.sent.append(body)


def signed(to: str, beh: str, body: Any, *, via: str | None, signer: Identity = USER) -> bytes:
    return (
        Envelope.build(
            sender=Handle(signer.did, "cli"),
            to=Handle(to, "root"),
            beh=beh,
            body=body,
            re=None if via is None else ReplyTo(via, "system", REPLY_BEHAVIOUR),
        )
        .sign(signer)
        .encode()
    )


@pytest.fixture
async def nodes() -> Any:
    network = MemoryNetwork()
    trust_a, trust_b = TrustContext(NODE_A), TrustContext(NODE_B)
    trust_a.add_root(USER.did)
    trust_b.add_root(USER.did)
    echo_a, echo_b = Echo(), Echo()
    async with (
        ActorSystem(NODE_A, trust_a, transports=[network.transport()]) as a,
        ActorSystem(NODE_B, trust_b, transports=[network.transport()]) as b,
    ):
        await a.spawn(echo_a, name="root")
        await b.spawn(echo_b, name="root")
        yield a, b, echo_a, echo_b, trust_a


async def test_relay_to_this_node(nodes: Any) -> None:
    a, *_ = nodes
    outcome = await a.relay(signed(NODE_A.did, "/dms/echo", 1, via=NODE_A.did))
    assert outcome.unwrap() == {"echo": 1, "caller": USER.did}


async def test_relay_to_another_node(nodes: Any) -> None:
    a, b, *_ = nodes
    outcome = await a.relay(signed(NODE_B.did, "/dms/echo", 2, via=NODE_A.did))
    assert outcome.unwrap() == {"echo": 2, "caller": USER.did}
    assert a.counters["envelopes_relayed"] == 1
    assert b.counters["envelopes_in"] == 1


async def test_relayed_calls_are_authorised(nodes: Any) -> None:
    a, *_ = nodes
    stranger = Identity.generate()
    outcome = await a.relay(signed(NODE_A.did, "/dms/echo", 3, via=NODE_A.did, signer=stranger))
    assert not outcome.ok
    assert outcome.error_type == "Unauthorized"
    assert f"no delegation for /dms/echo from {stranger.did}" in outcome.message


async def test_relayed_send(nodes: Any) -> None:
    a, _, echo_a, *_ = nodes
    assert await a.relay(signed(NODE_A.did, "/dms/note", "hi", via=None)) is None
    await trio.testing.wait_all_tasks_blocked()
    assert echo_a.sent == ["hi"]


async def test_relay_refusals_are_told(nodes: Any) -> None:
    a, *_ = nodes
    data = signed(NODE_A.did, "/dms/echo", 4, via=NODE_A.did)
    await a.relay(data)
    with pytest.raises(EnvelopeReplayed):
        await a.relay(data)
    tampered = bytearray(signed(NODE_A.did, "/dms/echo", 5, via=NODE_A.did))
    tampered[-1] ^= 1
    with pytest.raises(BadSignature):
        await a.relay(bytes(tampered))
    with pytest.raises(MalformedEnvelope, match=r"'re\.did' must be"):
        await a.relay(signed(NODE_A.did, "/dms/echo", 6, via=NODE_B.did))
