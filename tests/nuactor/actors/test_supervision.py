"""Supervision: strategies, restart intensity with back-off, and escalation (autojump clock)."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from nuactor import Actor, ActorSystem, Context, Identity, Strategy, Supervision, behaviour
from nuactor._supervision import Restart
from nuactor.errors import ActorCrashed

IDENTITY = Identity.from_seed(bytes([7]) * 32)


class Worker(Actor):
    """Counts its starts in a shared journal; crashes when told to."""

    journal: list[str]

    def __init__(self, name: str, journal: list[str]) -> None:
        super().__init__()
        self.name = name
        self.journal = journal
        self.crash = trio.Event()

    async def started(self, ctx: Context) -> None:
        self.journal.append(f"start {self.name}")

    async def run(self, ctx: Context) -> None:
        await self.crash.wait()
        raise RuntimeError(f"{self.name} crashed")

    @behaviour("/crash")
    async def do_crash(self, ctx: Context, body: Any) -> None:
        self.crash.set()

    @behaviour("/ping")
    async def ping(self, ctx: Context, body: Any) -> str:
        return self.name


def parent_with(strategy: Strategy, journal: list[str], **policy: Any) -> type[Actor]:
    class Parent(Actor):
        supervision = Supervision(strategy=strategy, **policy)

        async def started(self, ctx: Context) -> None:
            for name in ("a", "b", "c"):
                await ctx.spawn(lambda name=name: Worker(name, journal), name=name)

    return Parent


async def crash(system: ActorSystem, name: str) -> None:
    await system.invoke(system.handle(name), "/crash")


async def settle() -> None:
    await trio.sleep(10)  # past any back-off (autojump makes this instant)


@pytest.mark.parametrize(
    ("strategy", "restarted"),
    [
        (Strategy.ONE_FOR_ONE, ["start b"]),
        (Strategy.ONE_FOR_ALL, ["start a", "start b", "start c"]),
        (Strategy.REST_FOR_ONE, ["start b", "start c"]),
    ],
)
async def test_strategies(
    strategy: Strategy, restarted: list[str], autojump_clock: trio.testing.MockClock
) -> None:
    journal: list[str] = []
    async with ActorSystem(IDENTITY) as system:
        await system.spawn(parent_with(strategy, journal), name="parent")
        assert journal == ["start a", "start b", "start c"]
        journal.clear()
        await crash(system, "b")
        await settle()
        assert journal == restarted
        # Everyone answers afterwards, with fresh instances where restarted.
        for name in "abc":
            assert await system.invoke(system.handle(name), "/ping") == name


async def test_restart_backoff_doubles(autojump_clock: trio.testing.MockClock) -> None:
    journal: list[str] = []
    starts: list[float] = []

    class Timed(Worker):
        async def started(self, ctx: Context) -> None:
            starts.append(trio.current_time())
            await super().started(ctx)

    class Parent(Actor):
        supervision = Supervision(max_restarts=5, within=100, backoff_initial=1.0, backoff_max=3.0)

        async def started(self, ctx: Context) -> None:
            await ctx.spawn(lambda: Timed("w", journal), name="w")

    async with ActorSystem(IDENTITY) as system:
        await system.spawn(Parent, name="parent")
        delays = []
        for _ in range(4):
            crashed_at = trio.current_time()
            await crash(system, "w")
            await settle()
            delays.append(round(starts[-1] - crashed_at, 3))
    assert delays == [1, 2, 3, 3]  # doubling, capped at backoff_max


async def test_intensity_exceeded_escalates_to_the_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[str] = []
    parent_starts = 0

    class Parent(Actor):
        supervision = Supervision(max_restarts=2, within=60)

        async def started(self, ctx: Context) -> None:
            nonlocal parent_starts
            parent_starts += 1
            await ctx.spawn(lambda: Worker("w", journal), name="w")

    class Grandparent(Actor):
        supervision = Supervision(max_restarts=5, within=60)

        async def started(self, ctx: Context) -> None:
            await ctx.spawn(Parent, name="parent")

    async with ActorSystem(IDENTITY) as system:
        await system.spawn(Grandparent, name="top")
        for _ in range(3):
            await crash(system, "w")
            await settle()
        # Two restarts were allowed; the third crash escalated: the parent was restarted by
        # the grandparent, and with it a fresh child.
        assert parent_starts == 2
        assert journal.count("start w") == 4
        assert await system.invoke(system.handle("w"), "/ping") == "w"


async def test_restarts_outside_the_window_do_not_count(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[str] = []

    class Parent(Actor):
        supervision = Supervision(max_restarts=1, within=5)

        async def started(self, ctx: Context) -> None:
            await ctx.spawn(lambda: Worker("w", journal), name="w")

    async with ActorSystem(IDENTITY) as system:
        await system.spawn(Parent, name="parent")
        for _ in range(4):
            await crash(system, "w")
            await trio.sleep(30)  # longer than the window each time
        assert journal.count("start w") == 5


async def test_escalation_past_the_root_ends_the_system(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[str] = []
    from nuactor import SystemConfig

    config = SystemConfig(root_supervision=Supervision(max_restarts=1, within=60))
    with pytest.raises(ActorCrashed, match="crashed more than 1 times"):
        async with ActorSystem(IDENTITY, config=config) as system:
            await system.spawn(lambda: Worker("w", journal), name="w")
            for _ in range(2):
                await crash(system, "w")
                await settle()
            await trio.sleep_forever()


async def test_temporary_children_are_not_restarted(autojump_clock: trio.testing.MockClock) -> None:
    journal: list[str] = []
    async with ActorSystem(IDENTITY) as system:
        await system.spawn(lambda: Worker("w", journal), name="w", restart=Restart.TEMPORARY)
        await crash(system, "w")
        await settle()
        assert journal == ["start w"]
        assert "w" not in [a["name"] for a in system.actors()]


async def test_failing_first_start_is_the_spawners_error() -> None:
    class Broken(Actor):
        async def started(self, ctx: Context) -> None:
            raise OSError("no disk")

    async with ActorSystem(IDENTITY) as system:
        with pytest.raises(OSError, match="no disk"):
            await system.spawn(Broken, name="broken")
        assert system.actors() == []
        await system.spawn(lambda: Worker("x", []), name="broken")  # the name is free


async def test_a_crash_does_not_lose_queued_messages(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal: list[str] = []
    async with ActorSystem(IDENTITY) as system:

        class Parent(Actor):
            async def started(self, ctx: Context) -> None:
                await ctx.spawn(lambda: Worker("w", journal), name="w")

        await system.spawn(Parent, name="parent")
        await crash(system, "w")
        # Sent during the back-off: queued in the mailbox, handled by the new instance.
        assert await system.invoke(system.handle("w"), "/ping", timeout=60) == "w"
