"""``/public/status`` (anyone) and ``/dms/node/status`` (authorised callers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuactor import Actor, Context

from ..observability import set_log_level
from ._body import field

if TYPE_CHECKING:
    from ..node import Node


def register(actor: Actor, node: Node) -> None:
    @actor.on("/public/status")
    async def public_status(ctx: Context, body: Any) -> dict[str, Any]:
        return node.status(full=False)

    @actor.on("/dms/node/status")
    async def status(ctx: Context, body: Any) -> dict[str, Any]:
        return node.status(full=True)

    @actor.on("/dms/node/log/level")
    async def log_level(ctx: Context, body: Any) -> dict[str, Any]:
        """Change the log level of the running node (``{"level": "debug"}``)."""
        level = field(body, "level", str)
        set_log_level(level)
        await node.record("log.level", {"level": level, "by": ctx.sender})
        return {"level": level}
