"""An example dmsnode plugin: ``/plugins/hello/greet`` answers with a greeting.

Install it next to dmsnode (``pip install ./examples/plugin_hello``) and restart the node. Callers
need a delegation covering ``/plugins/hello/greet`` like for any other behaviour.
"""

from __future__ import annotations

from typing import Any


def setup(plugin: Any) -> None:
    """Called by the node at start-up with a ``dmsnode.plugins.Plugin``."""

    @plugin.behaviour("greet")
    async def greet(ctx: Any, body: Any) -> dict[str, str]:
        name = body.get("name", "stranger") if isinstance(body, dict) else "stranger"
        return {"greeting": f"hello {name}", "node": plugin.node.did, "caller": ctx.sender}
