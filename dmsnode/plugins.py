"""Plugins: behaviours from installed packages, under their own namespace (DESIGN §3.6).

A plugin is a Python package with an entry point in the group ``dmsnode.behaviours``; the entry
point names a function ``setup(plugin: Plugin) -> None`` that registers behaviours with
:meth:`Plugin.behaviour`. Every behaviour of the plugin ``NAME`` lives under ``/plugins/NAME``,
on the node's root actor, so it is covered by the same capability checks as built-in ones.
A plugin that fails to load is logged and skipped: it never stops the node.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

from nuactor import Actor

from .errors import DmsError

if TYPE_CHECKING:
    from .node import Node

__all__ = ["BEHAVIOURS_GROUP", "LoadedPlugin", "Plugin", "PluginError", "load_plugins"]

log = logging.getLogger("dmsnode.plugins")

BEHAVIOURS_GROUP: Final = "dmsnode.behaviours"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
F = TypeVar("F", bound=Callable[..., Any])


class PluginError(DmsError):
    """A plugin did something it may not (a behaviour outside its namespace, say)."""


@final
class Plugin:
    """What a plugin's ``setup`` receives: its name, namespace and the node."""

    def __init__(self, name: str, actor: Actor, node: Node) -> None:
        self.name = name
        self.namespace = f"/plugins/{name}"
        self.node = node
        self._actor = actor
        self.behaviours: list[str] = []

    def behaviour(self, path: str, *, concurrent: bool = False) -> Callable[[F], F]:
        """Register ``handler(ctx, body)`` at ``path`` below the plugin's namespace.

        ``path`` is relative (``"greet"`` → ``/plugins/NAME/greet``) or absolute within it.
        """
        full = path if path.startswith("/") else f"{self.namespace}/{path}"
        if not full.startswith(self.namespace + "/"):
            raise PluginError(
                f"plugin {self.name!r} may only add behaviours under {self.namespace}/, not {full}"
            )

        def register(handler: F) -> F:
            self._actor.add_behaviour(full, handler, concurrent=concurrent)
            self.behaviours.append(full)
            return handler

        return register


@final
@dataclass
class LoadedPlugin:
    """The outcome of loading one plugin."""

    name: str
    source: str
    behaviours: list[str] = field(default_factory=list)
    error: str | None = None


def load_plugins(actor: Actor, node: Node) -> list[LoadedPlugin]:
    """Load every installed plugin onto ``actor``; failures are reported, not raised."""
    loaded = []
    for entry in sorted(
        importlib.metadata.entry_points(group=BEHAVIOURS_GROUP), key=lambda e: e.name
    ):
        result = LoadedPlugin(entry.name, entry.value)
        loaded.append(result)
        if not _NAME.match(entry.name):
            result.error = "invalid plugin name: use lowercase letters, digits, '_' or '-'"
            log.error("plugin %r skipped: %s", entry.name, result.error)
            continue
        before = set(actor.behaviours)
        try:
            setup = entry.load()
            plugin = Plugin(entry.name, actor, node)
            setup(plugin)
        except Exception as exc:
            for path in set(actor.behaviours) - before:
                actor.remove_behaviour(path)  # all or nothing
            result.error = f"{type(exc).__name__}: {exc}"
            log.error("plugin %r (%s) failed to load: %s", entry.name, entry.value, result.error)
            continue
        result.behaviours = plugin.behaviours
        log.info(
            "plugin %r loaded: %s", entry.name, ", ".join(plugin.behaviours) or "no behaviours"
        )
    return loaded
