"""The node's behaviours, by NuNet's names; each module registers one group on the root actor."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nuactor import Actor

from . import cap, hello, onboarding, peers, status

if TYPE_CHECKING:
    from ..node import Node

__all__ = ["build_root_actor"]


def build_root_actor(node: Node) -> Actor:
    """The root actor (inbox ``root``) with every built-in behaviour of the node."""
    actor = Actor()
    for group in (hello, status, peers, cap, onboarding):
        group.register(actor, node)
    return actor
