"""``/dms/node/peers/{list,self,ping,connect}``: the node's view of the network."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuactor import Actor, Context

from ._body import field

if TYPE_CHECKING:
    from ..node import Node


def register(actor: Actor, node: Node) -> None:
    @actor.on("/dms/node/peers/list")
    async def peers_list(ctx: Context, body: Any) -> list[dict[str, Any]]:
        return node.peers()

    @actor.on("/dms/node/peers/self")
    async def peers_self(ctx: Context, body: Any) -> dict[str, Any]:
        return {"did": node.did, "addresses": node.network.addresses}

    @actor.on("/dms/node/peers/ping", concurrent=True)
    async def peers_ping(ctx: Context, body: Any) -> dict[str, Any]:
        did = field(body, "did", str)
        rtt = await node.network.ping(did)
        return {"did": did, "rtt_ms": round(rtt * 1000, 3)}

    @actor.on("/dms/node/peers/connect", concurrent=True)
    async def peers_connect(ctx: Context, body: Any) -> dict[str, Any]:
        address = field(body, "address", str)
        did = await node.network.connect(address)
        return {"did": did, "address": address}
