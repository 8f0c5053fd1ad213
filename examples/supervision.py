"""Supervision: a flaky worker crashes and is restarted; past the limit, its parent restarts too.

Run it: ``python examples/supervision.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from nuactor import Actor, ActorSystem, Context, Identity, Strategy, Supervision, behaviour


class Flaky(Actor):
    """Crashes (its ``run`` raises) whenever it is asked to."""

    generation = 0

    async def started(self, ctx: Context) -> None:
        Flaky.generation += 1
        self.trigger = trio.Event()
        print(f"  flaky: started (instance {Flaky.generation})")

    async def run(self, ctx: Context) -> None:
        await self.trigger.wait()
        raise RuntimeError("the disk filled up")

    @behaviour("/crash")
    async def crash(self, ctx: Context, body: Any) -> None:
        self.trigger.set()

    @behaviour("/status")
    async def status(self, ctx: Context, body: Any) -> str:
        return f"instance {Flaky.generation} is fine"


class Steady(Actor):
    async def started(self, ctx: Context) -> None:
        print("  steady: started")


class Team(Actor):
    """Supervises both workers: when one crashes, only that one restarts (one_for_one),
    at most twice in ten seconds, with back-off."""

    supervision = Supervision(
        strategy=Strategy.ONE_FOR_ONE, max_restarts=2, within=10.0, backoff_initial=0.1
    )

    async def started(self, ctx: Context) -> None:
        print("team: started")
        await ctx.spawn(Flaky, name="flaky")
        await ctx.spawn(Steady, name="steady")


async def main() -> None:
    async with ActorSystem(Identity.generate()) as system:
        await system.spawn(Team, name="team")
        flaky = system.handle("flaky")
        for attempt in range(1, 4):
            print(f"crash {attempt}:")
            await system.invoke(flaky, "/crash")
            await trio.sleep(1.0)  # past the back-off
            print("  ->", await system.invoke(flaky, "/status"))
        print("three crashes in ten seconds: the team itself was restarted, with fresh workers")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="  log: %(message)s")
    trio.run(main)
