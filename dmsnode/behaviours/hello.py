"""``/public/hello`` and the ``/broadcast/hello`` gossip on ``/nunet/hello``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from nuactor import Actor, Context

if TYPE_CHECKING:
    from ..node import Node


def register(actor: Actor, node: Node) -> None:
    @actor.on("/public/hello")
    async def hello(ctx: Context, body: Any) -> dict[str, Any]:
        """Say who this node is (anyone may ask)."""
        return {"did": node.did, "message": f"hello {ctx.sender}"}

    @actor.on("/broadcast/hello")
    async def broadcast_hello(ctx: Context, body: Any) -> None:
        """Another node announced itself on the hello topic: remember when."""
        node.hellos[ctx.sender] = time.time()
