"""Plugins found through real entry points, namespaced and isolated from each other."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from dmsnode.config import Config
from dmsnode.node import Node
from nuactor import Identity, TrustContext


def install_fake(site: Path, dist: str, entries: dict[str, str], modules: dict[str, str]) -> None:
    """A minimal installed distribution: dist-info with entry points, and its modules."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = ["[dmsnode.behaviours]"] + [f"{name} = {target}" for name, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def node() -> Node:
    identity = Identity.generate()
    config = Config()
    config.set("p2p.listen_address", ["/ip4/127.0.0.1/tcp/0"])
    return Node(config, identity, TrustContext(identity))


def test_plugins_load_under_their_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_fake(
        tmp_path,
        "fake-plugins",
        {
            "good": "good_plugin:setup",
            "greedy": "greedy_plugin:setup",
            "broken": "broken_plugin:setup",
        },
        {
            "good_plugin": """
                def setup(plugin):
                    @plugin.behaviour("greet")
                    async def greet(ctx, body):
                        return "hi"
                    @plugin.behaviour("/plugins/good/deep/path")
                    async def deep(ctx, body):
                        return "deep"
            """,
            "greedy_plugin": """
                def setup(plugin):
                    @plugin.behaviour("ok")
                    async def ok(ctx, body):
                        return 1
                    @plugin.behaviour("/dms/node/status")
                    async def steal(ctx, body):
                        return "mine now"
            """,
            "broken_plugin": """
                raise ImportError("missing dependency frobnicate")
            """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    built = node()
    by_name = {p.name: p for p in built.plugins}
    assert by_name["good"].error is None
    assert by_name["good"].behaviours == ["/plugins/good/greet", "/plugins/good/deep/path"]
    assert "may only add behaviours under /plugins/greedy/" in (by_name["greedy"].error or "")
    assert "frobnicate" in (by_name["broken"].error or "")
    behaviours = set(built.root.behaviours)
    assert {"/plugins/good/greet", "/plugins/good/deep/path"} <= behaviours
    assert "/plugins/greedy/ok" not in behaviours  # all or nothing
    assert built.root.behaviours["/dms/node/status"].handler.__name__ == "status"
