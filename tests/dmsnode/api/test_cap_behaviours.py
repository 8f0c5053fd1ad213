"""``/dms/cap/*``: anchors added, listed and revoked on a running node (through the actor system,
as the gateway delivers them)."""

from __future__ import annotations

import pytest

from nuactor import Handle, Identity, TrustContext
from nuactor.errors import RemoteError

from .conftest import running_node


async def test_require_and_provide_anchors_then_revoke(user: Identity) -> None:
    async with running_node(user) as node:
        root = Handle(node.did, "root")
        org = Identity.generate()
        # A require anchor is issued by the node itself.
        required = node.trust.grant(org.did, "/dms/deployment")
        answer = await node.system.invoke(
            root, "/dms/cap/require/anchor", {"token": TrustContext.bundle_text([required])}
        )
        assert answer == {"cid": str(required.cid)}
        # A provide anchor is something granted to the node.
        provided = TrustContext(org).grant(node.did, "/dms/deployment", powerline=True)
        answer = await node.system.invoke(
            root, "/dms/cap/provide/anchor", {"token": TrustContext.bundle_text([provided])}
        )
        assert answer == {"cid": str(provided.cid)}
        listed = {(a["kind"], a["cid"]) for a in await node.system.invoke(root, "/dms/cap/list")}
        assert {("require", str(required.cid)), ("provide", str(provided.cid))} <= listed
        revoked = await node.system.invoke(
            root, "/dms/cap/revoke/anchor", {"cid": str(required.cid)}
        )
        assert revoked == {"revoked": str(required.cid)}
        after = {a["cid"]: a["revoked"] for a in await node.system.invoke(root, "/dms/cap/list")}
        assert after[str(required.cid)] is True


@pytest.mark.parametrize(
    ("beh", "why"),
    [
        ("/dms/cap/require/anchor", "a require anchor is a delegation this node issues"),
        ("/dms/cap/provide/anchor", "a provide anchor is a delegation granted to it"),
    ],
)
async def test_a_missing_or_foreign_token_is_refused_by_name(
    user: Identity, beh: str, why: str
) -> None:
    async with running_node(user) as node:
        root = Handle(node.did, "root")
        with pytest.raises(RemoteError, match="'token' must be a str"):
            await node.system.invoke(root, beh, {})
        stranger = Identity.generate()
        foreign = TrustContext(stranger).grant(Identity.generate().did, "/dms")
        with pytest.raises(RemoteError, match=why):
            await node.system.invoke(root, beh, {"token": TrustContext.bundle_text([foreign])})
