"""``/public/status`` (anyone) and ``/dms/node/status`` (authorised callers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuactor import Actor, Context

if TYPE_CHECKING:
    from ..node import Node


def register(actor: Actor, node: Node) -> None:
    @actor.on("/public/status")
    async def public_status(ctx: Context, body: Any) -> dict[str, Any]:
        return node.status(full=False)

    @actor.on("/dms/node/status")
    async def status(ctx: Context, body: Any) -> dict[str, Any]:
        return node.status(full=True)
