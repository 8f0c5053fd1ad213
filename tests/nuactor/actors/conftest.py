"""Shared pieces for the actor runtime tests."""

from __future__ import annotations

import pytest
import trio

from nuactor import Envelope, Identity


class AllowAll:
    """A trust object that authorises everything (tests that are not about authorisation)."""

    def authorize(self, envelope: Envelope) -> None:
        return None

    def proofs_for(self, subject: str, cmd: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        return (), ()


def all_tasks() -> set[trio.lowlevel.Task]:
    """Every task alive in this run, by walking the task tree from the root."""
    found: set[trio.lowlevel.Task] = set()
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None or task in found:
            continue
        found.add(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


@pytest.fixture
def identities() -> list[Identity]:
    return [Identity.from_seed(bytes([n]) * 32) for n in range(1, 6)]
