"""Shared pieces for the transport tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from nuactor import Actor, Envelope


class AllowAll:
    """A trust object that authorises everything (these tests are not about authorisation;
    the system authorises broadcasts too)."""

    def authorize(self, envelope: Envelope) -> None:
        return None

    def proofs_for(self, subject: str, cmd: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        return (), ()


def echo_actor() -> Actor:
    """An actor whose ``/echo`` answers the body and the sender."""
    actor = Actor()

    @actor.on("/echo")
    async def echo(ctx: Any, body: Any) -> Any:
        return {"body": body, "sender": ctx.sender}

    return actor


async def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` holds (state another task is about to update)."""
    with trio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - counters, tables, actor state: no events
            await trio.sleep(0.005)
