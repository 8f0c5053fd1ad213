"""``/dms/cap/*``: inspect and change the node's trust context at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuactor import Actor, Context

from ._body import field

if TYPE_CHECKING:
    from ..node import Node


def register(actor: Actor, node: Node) -> None:
    @actor.on("/dms/cap/list")
    async def cap_list(ctx: Context, body: Any) -> list[dict[str, Any]]:
        return node.capabilities()

    async def add_anchor(kind: str, ctx: Context, body: Any) -> dict[str, Any]:
        token = field(body, "token", str)
        add = node.trust.add_provide if kind == "provide" else node.trust.add_require
        anchor = add(token)
        node.save_trust()
        await node.record(f"cap.{kind}", {"cid": str(anchor.cid), "by": ctx.sender})
        return {"cid": str(anchor.cid)}

    @actor.on("/dms/cap/provide/anchor")
    async def provide(ctx: Context, body: Any) -> dict[str, Any]:
        return await add_anchor("provide", ctx, body)

    @actor.on("/dms/cap/require/anchor")
    async def require(ctx: Context, body: Any) -> dict[str, Any]:
        return await add_anchor("require", ctx, body)

    @actor.on("/dms/cap/revoke/anchor")
    async def revoke(ctx: Context, body: Any) -> dict[str, Any]:
        cid = node.trust.revoke(field(body, "cid", str))
        node.save_trust()
        await node.record("cap.revoke", {"cid": cid, "by": ctx.sender})
        return {"revoked": cid}
