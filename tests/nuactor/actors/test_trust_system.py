"""Three actor systems on the memory network, authorised by real UCAN delegation chains.

The owner's system, node A and node B. A trusts its owner (root anchor); A grants B part of its
``/dms`` behaviours, which B proves with ``proofs_for``; a broadcast is authorised on every
receiver through the receiver's require anchor for an organisation.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from nuactor import (
    Actor,
    ActorSystem,
    Context,
    Delegation,
    Envelope,
    Handle,
    Identity,
    MemoryNetwork,
    TrustContext,
    behaviour,
)
from nuactor.errors import Unauthorized

OWNER, NODE_A, NODE_B, ORG, STRANGER = (Identity.from_seed(bytes([n]) * 32) for n in range(1, 6))
PAST = 1_000_000_000


class Node(Actor):
    """The root actor of a node: records what it is asked, and by whom, with which proofs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, tuple[bytes, ...]]] = []

    def _record(self, ctx: Context) -> str:
        assert ctx.envelope is not None
        self.calls.append((ctx.envelope.beh, ctx.sender, ctx.envelope.prf))
        return ctx.system.did

    @behaviour("/dms/deployment/request")
    async def request(self, ctx: Context, body: Any) -> Any:
        return {"node": self._record(ctx), "got": body}

    @behaviour("/dms/node/peers/list")
    async def peers(self, ctx: Context, body: Any) -> Any:
        return [self._record(ctx)]

    @behaviour("/dms/node/onboarding/onboard")
    async def onboard(self, ctx: Context, body: Any) -> Any:
        return {"onboarded": self._record(ctx)}

    @behaviour("/public/hello")
    async def hello(self, ctx: Context, body: Any) -> Any:
        return f"hello {ctx.sender}"


class Carrying:
    """A caller's authorizer that always attaches the given chain (to test the receiver)."""

    def __init__(self, trust: TrustContext, *chain: Delegation) -> None:
        self.trust = trust
        self.chain = chain

    def authorize(self, envelope: Envelope) -> None:
        self.trust.authorize(envelope)

    def proofs_for(self, subject: str, cmd: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        return tuple(d.cid_bytes for d in self.chain), tuple(d.encode() for d in self.chain)


async def test_three_systems_with_delegation_chains(autojump_clock: trio.abc.Clock) -> None:
    network = MemoryNetwork()
    trust_owner, trust_a, trust_b = TrustContext(OWNER), TrustContext(NODE_A), TrustContext(NODE_B)
    trust_a.add_root(OWNER.did)
    grant = trust_a.grant(NODE_B.did, "/dms/deployment")
    trust_b.add_provide(TrustContext.bundle_text([grant]))  # what B was given, as text
    node_a, node_b = Node(), Node()
    async with (
        ActorSystem(OWNER, trust_owner, transports=[network.transport()]) as owner,
        ActorSystem(NODE_A, trust_a, transports=[network.transport()]) as a,
        ActorSystem(NODE_B, trust_b, transports=[network.transport()]) as b,
    ):
        root_a = await a.spawn(node_a, name="root")
        await b.spawn(node_b, name="root")

        # The owner needs no proof on its node: the root anchor completes its call.
        assert await owner.invoke(root_a, "/dms/node/onboarding/onboard", {}) == {
            "onboarded": NODE_A.did
        }
        # B calls A with the grant A gave it, attached by proofs_for.
        reply = await b.invoke(root_a, "/dms/deployment/request", {"cpu": 2})
        assert reply == {"node": NODE_A.did, "got": {"cpu": 2}}
        assert node_a.calls[-1] == ("/dms/deployment/request", NODE_B.did, (grant.cid_bytes,))
        verified = trust_a.signature_verifications
        await b.invoke(root_a, "/dms/deployment/request", {"cpu": 3})
        assert trust_a.signature_verifications == verified  # warm: no signature checked again

        # Outside the grant: refused at once, with the reason, not a timeout.
        start = trio.current_time()
        with pytest.raises(Unauthorized) as caught:
            await b.invoke(root_a, "/dms/node/peers/list", timeout=30)
        assert trio.current_time() - start < 30
        assert str(caught.value).startswith(
            f"no delegation for /dms/node/peers/list from {NODE_B.did} rooted at this node"
        )
        with pytest.raises(Unauthorized, match="no root or require anchor"):
            await a.invoke(Handle(NODE_B.did, "root"), "/dms/deployment/request", {})
        assert await b.invoke(root_a, "/public/hello") == f"hello {NODE_B.did}"

        # Revoking the grant stops B's next call, although A has its chain memoised.
        trust_a.revoke(grant.cid)
        with pytest.raises(Unauthorized, match=f"delegation {grant.cid} has been revoked"):
            await b.invoke(root_a, "/dms/deployment/request", {})
        calls = len(node_a.calls)
    assert len(node_a.calls) == calls == 3


@pytest.mark.parametrize(
    ("chain", "reason"),
    [
        pytest.param(
            "widened",
            r"delegation \S+ grants /dms, which its parent \S+ \(/dms/deployment\) does not cover",
            id="widened",
        ),
        pytest.param("expired", r"delegation \S+ .* expired at 2001-09-09T01:46:40Z", id="expired"),
    ],
)
async def test_widened_or_expired_chain_is_refused(
    chain: str, reason: str, autojump_clock: trio.abc.Clock
) -> None:
    network = MemoryNetwork()
    trust_a = TrustContext(NODE_A)
    if chain == "widened":
        to_b = trust_a.grant(NODE_B.did, "/dms/deployment")
        links: tuple[Delegation, ...] = (to_b, Delegation.issue(NODE_B, STRANGER.did, None, "/dms"))
    else:
        links = (trust_a.grant(STRANGER.did, "/dms/deployment", expiration=PAST),)
    node_a = Node()
    async with (
        ActorSystem(NODE_A, trust_a, transports=[network.transport()]) as a,
        ActorSystem(
            STRANGER, Carrying(TrustContext(STRANGER), *links), transports=[network.transport()]
        ) as stranger,
    ):
        root_a = await a.spawn(node_a, name="root")
        with pytest.raises(Unauthorized, match=reason):
            await stranger.invoke(root_a, "/dms/deployment/request", {})
    assert node_a.calls == []
    assert a.counters["refused_Unauthorized"] == 1


async def test_broadcast_authorised_through_the_org_require_anchor() -> None:
    network = MemoryNetwork()
    trust_owner, trust_a, trust_b = TrustContext(OWNER), TrustContext(NODE_A), TrustContext(NODE_B)
    trust_a.grant(ORG.did, "/dms/deployment", require=True)  # A accepts the org's members
    # The owner is a member of the organisation: a powerline, completed by each receiver.
    trust_owner.add_provide(Delegation.issue(ORG, OWNER.did, None, "/dms/deployment"))
    node_a, node_b = Node(), Node()
    async with (
        ActorSystem(OWNER, trust_owner, transports=[network.transport()]) as owner,
        ActorSystem(NODE_A, trust_a, transports=[network.transport()]) as a,
        ActorSystem(NODE_B, trust_b, transports=[network.transport()]) as b,
    ):
        for system, actor in ((a, node_a), (b, node_b)):
            await system.spawn(actor, name="root")
            system.subscribe("/nunet/deployment", "root")

        await owner.broadcast("/nunet/deployment", "/dms/deployment/request", {"round": 1})
        await trio.testing.wait_all_tasks_blocked()
        assert [c[:2] for c in node_a.calls] == [("/dms/deployment/request", OWNER.did)]
        assert len(node_a.calls[0][2]) == 1  # only org → owner travelled
        assert node_b.calls == []  # B does not accept the organisation (yet)
        assert b.counters["refused_broadcast_unauthorized"] == 1

        trust_b.grant(ORG.did, "/dms", require=True)
        await owner.broadcast("/nunet/deployment", "/dms/deployment/request", {"round": 2})
        await trio.testing.wait_all_tasks_blocked()
        assert [c[:2] for c in node_b.calls] == [("/dms/deployment/request", OWNER.did)]
        assert len(node_a.calls) == 2

        # Outside what the organisation was given: nobody runs it.
        await owner.broadcast("/nunet/deployment", "/dms/node/peers/list", {})
        await trio.testing.wait_all_tasks_blocked()
        assert len(node_a.calls) == 2 and len(node_b.calls) == 1
        assert a.counters["refused_broadcast_unauthorized"] == 1


async def test_a_call_without_delegation_is_not_a_timeout(autojump_clock: trio.abc.Clock) -> None:
    network = MemoryNetwork()
    async with (
        ActorSystem(NODE_A, TrustContext(NODE_A), transports=[network.transport()]) as a,
        ActorSystem(STRANGER, TrustContext(STRANGER), transports=[network.transport()]) as s,
    ):
        root_a = await a.spawn(Node(), name="root")
        # An InvokeTimeout would escape pytest.raises and fail the test.
        with pytest.raises(Unauthorized, match=f"from {STRANGER.did} rooted at this node"):
            await s.invoke(root_a, "/dms/node/peers/list", timeout=5)
