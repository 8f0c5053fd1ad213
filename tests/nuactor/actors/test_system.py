"""The actor system: lifecycle, behaviours, invoke/send, errors, ordering and backpressure."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from nuactor import (
    Actor,
    ActorSystem,
    Context,
    Handle,
    Identity,
    MemoryNetwork,
    SystemConfig,
    behaviour,
)
from nuactor.errors import ActorNameTaken, InvokeTimeout, RemoteError, Unauthorized

from .conftest import AllowAll, all_tasks


class Echo(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Any] = []

    @behaviour("/echo")
    async def echo(self, ctx: Context, body: Any) -> Any:
        self.seen.append(body)
        return {"echo": body, "sender": ctx.sender}

    @behaviour("/fail")
    async def fail(self, ctx: Context, body: Any) -> Any:
        raise ValueError(f"cannot do {body}")

    @behaviour("/slow")
    async def slow(self, ctx: Context, body: Any) -> Any:
        await trio.sleep(body)
        return "done"


async def test_invoke_local(identities: list[Identity]) -> None:
    async with ActorSystem(identities[0]) as system:
        handle = await system.spawn(Echo, name="root")
        assert handle == Handle(identities[0].did, "root")
        reply = await system.invoke(handle, "/echo", [1, "two"])
        assert reply == {"echo": [1, "two"], "sender": identities[0].did}


async def test_invoke_remote_over_memory(identities: list[Identity]) -> None:
    network = MemoryNetwork()
    a, b = identities[:2]
    async with (
        ActorSystem(a, AllowAll(), transports=[network.transport()]) as sa,
        ActorSystem(b, AllowAll(), transports=[network.transport()]) as sb,
    ):
        handle = await sb.spawn(Echo, name="root")
        assert await sa.invoke(handle, "/echo", {"x": 1}) == {"echo": {"x": 1}, "sender": a.did}
        assert sb.counters["envelopes_in"] == 1
        assert sa.counters["envelopes_in"] == 1  # the reply


@pytest.mark.parametrize("remote", [False, True])
async def test_behaviour_error_reaches_caller_and_system_survives(
    identities: list[Identity], remote: bool
) -> None:
    network = MemoryNetwork()
    async with (
        ActorSystem(identities[0], AllowAll(), transports=[network.transport()]) as caller,
        ActorSystem(identities[1], AllowAll(), transports=[network.transport()]) as host,
    ):
        handle = await host.spawn(Echo, name="root")
        system = caller if remote else host
        with pytest.raises(RemoteError) as caught:
            await system.invoke(handle, "/fail", "this")
        assert caught.value.type == "ValueError"
        assert caught.value.message == "cannot do this"
        assert (await system.invoke(handle, "/echo", 2))["echo"] == 2


@pytest.mark.parametrize("remote", [False, True])
async def test_unknown_actor_and_behaviour(identities: list[Identity], remote: bool) -> None:
    network = MemoryNetwork()
    async with (
        ActorSystem(identities[0], AllowAll(), transports=[network.transport()]) as caller,
        ActorSystem(identities[1], AllowAll(), transports=[network.transport()]) as host,
    ):
        await host.spawn(Echo, name="root")
        system = caller if remote else host
        with pytest.raises(RemoteError, match="no actor named 'ghost'") as caught:
            await system.invoke(host.handle("ghost"), "/echo", 1)
        assert caught.value.type == "UnknownActor"
        with pytest.raises(RemoteError, match="no behaviour /nope") as caught:
            await system.invoke(host.handle("root"), "/nope", 1)
        assert caught.value.type == "UnknownBehaviour"


async def test_unauthorized_fails_fast_with_reason(identities: list[Identity]) -> None:
    network = MemoryNetwork()
    async with (
        ActorSystem(identities[0], AllowAll(), transports=[network.transport()]) as caller,
        ActorSystem(identities[1], transports=[network.transport()]) as host,  # no trust
    ):
        handle = await host.spawn(Echo, name="root")
        start = trio.current_time()
        with pytest.raises(Unauthorized, match="refused /echo from " + identities[0].did):
            await caller.invoke(handle, "/echo", 1, timeout=30)
        assert trio.current_time() - start < 5  # an answer, not a timeout
        assert host.counters["refused_Unauthorized"] == 1


async def test_invoke_timeout_and_clean_cancellation(
    identities: list[Identity], autojump_clock: trio.testing.MockClock
) -> None:
    network = MemoryNetwork()
    async with (
        ActorSystem(identities[0], AllowAll(), transports=[network.transport()]) as caller,
        ActorSystem(identities[1], AllowAll(), transports=[network.transport()]) as host,
    ):
        handle = await host.spawn(Echo, name="root")
        with pytest.raises(InvokeTimeout, match="within 1"):
            await caller.invoke(handle, "/slow", 100, timeout=1)
        assert caller._pending == {}
        with trio.move_on_after(1) as scope:
            await caller.invoke(handle, "/slow", 100)
        assert scope.cancelled_caught
        assert caller._pending == {}
        # Local invokes time out and cancel cleanly too.
        with pytest.raises(InvokeTimeout):
            await host.invoke(handle, "/slow", 100, timeout=1)
        # The system is still healthy afterwards (the actor works through its queue).
        assert (await caller.invoke(handle, "/echo", 3, timeout=1000))["echo"] == 3


async def test_no_task_survives_the_system(identities: list[Identity]) -> None:
    network = MemoryNetwork()
    before = all_tasks()

    class Busybody(Actor):
        async def started(self, ctx: Context) -> None:
            await ctx.spawn(Echo, name="child")

        async def run(self, ctx: Context) -> None:
            await trio.sleep_forever()

    async with (
        ActorSystem(identities[0], AllowAll(), transports=[network.transport()]) as one,
        ActorSystem(identities[1], AllowAll(), transports=[network.transport()]) as two,
    ):
        await one.spawn(Busybody, name="root")
        await two.spawn(Echo, name="root")
        await one.invoke(two.handle("root"), "/echo", 1)
        assert len(all_tasks()) > len(before) + 5
    assert all_tasks() == before


async def test_leaving_the_block_with_an_error(identities: list[Identity]) -> None:
    with pytest.raises(KeyError):
        async with ActorSystem(identities[0]) as system:
            await system.spawn(Echo, name="root")
            raise KeyError("boom")


async def test_send_is_fire_and_forget_and_failures_are_logged(
    identities: list[Identity], caplog: pytest.LogCaptureFixture
) -> None:
    echo = Echo()
    async with ActorSystem(identities[0]) as system:
        handle = await system.spawn(echo, name="root")
        await system.send(handle, "/echo", "hi")
        with caplog.at_level(logging.WARNING, logger="nuactor"):
            await system.send(handle, "/fail", "it")
            await system.invoke(handle, "/echo", "sync")  # the queue is processed in order
        assert echo.seen == ["hi", "sync"]
        assert "ValueError: cannot do it" in caplog.text


async def test_messages_are_handled_one_at_a_time_in_order(identities: list[Identity]) -> None:
    log: list[str] = []

    class Serial(Actor):
        @behaviour("/work")
        async def work(self, ctx: Context, body: int) -> None:
            log.append(f"start {body}")
            await trio.lowlevel.checkpoint()
            await trio.lowlevel.checkpoint()
            log.append(f"end {body}")

    async with ActorSystem(identities[0]) as system:
        handle = await system.spawn(Serial, name="root")
        async with trio.open_nursery() as nursery:
            for n in range(5):
                nursery.start_soon(system.invoke, handle, "/work", n)
                await trio.lowlevel.checkpoint()  # so that arrival order is n's order
    assert log == [item for n in range(5) for item in (f"start {n}", f"end {n}")]


async def test_concurrent_behaviours_overlap(identities: list[Identity]) -> None:
    running = 0
    peak = 0

    class Parallel(Actor):
        @behaviour("/work", concurrent=True)
        async def work(self, ctx: Context, body: None) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await trio.sleep(0.01)
            running -= 1

    async with ActorSystem(identities[0]) as system:
        handle = await system.spawn(Parallel, name="root")
        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(system.invoke, handle, "/work")
    assert peak == 10


async def test_local_sender_waits_when_the_mailbox_is_full(identities: list[Identity]) -> None:
    gate = trio.Event()
    handled: list[int] = []

    class Gated(Actor):
        @behaviour("/work")
        async def work(self, ctx: Context, body: int) -> None:
            await gate.wait()
            handled.append(body)

    config = SystemConfig(mailbox_size=2)
    async with ActorSystem(identities[0], config=config) as system:
        handle = await system.spawn(Gated, name="root")
        sent = 0

        async def sender() -> None:
            nonlocal sent
            for n in range(6):
                await system.send(handle, "/work", n)
                sent += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            await trio.testing.wait_all_tasks_blocked()
            # One message in the handler, two queued: the fourth send waits.
            assert sent == 3
            gate.set()
        await system.invoke(handle, "/work", 99)
    assert handled == [0, 1, 2, 3, 4, 5, 99]


async def test_remote_sender_gets_busy_when_the_mailbox_is_full(identities: list[Identity]) -> None:
    gate = trio.Event()

    class Gated(Actor):
        @behaviour("/work")
        async def work(self, ctx: Context, body: int) -> int:
            await gate.wait()
            return body

    network = MemoryNetwork()
    config = SystemConfig(mailbox_size=1)
    async with (
        ActorSystem(identities[0], AllowAll(), transports=[network.transport()]) as caller,
        ActorSystem(
            identities[1], AllowAll(), transports=[network.transport()], config=config
        ) as host,
    ):
        handle = await host.spawn(Gated, name="root")
        results: list[object] = []
        refused = trio.Event()

        async def call(n: int) -> None:
            try:
                results.append(await caller.invoke(handle, "/work", n))
            except Exception as exc:
                results.append(exc)
                refused.set()

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(call, n)
            await refused.wait()
            gate.set()
        busy = [r for r in results if not isinstance(r, int)]
        assert busy, results
        assert all(type(r).__name__ == "Busy" and "mailbox" in str(r) for r in busy)
        handled = [r for r in results if isinstance(r, int)]
        assert len(handled) + len(busy) == 4
        assert len(handled) >= 2  # one in the handler, one in the mailbox


async def test_actor_names_are_unique(identities: list[Identity]) -> None:
    async with ActorSystem(identities[0]) as system:
        await system.spawn(Echo, name="root")
        with pytest.raises(ActorNameTaken):
            await system.spawn(Echo, name="root")
        generated = await system.spawn(Echo)
        assert generated.actor != "root"
        await system.stop("root")
        await system.spawn(Echo, name="root")  # the name is free again


async def test_stopping_an_actor_refuses_its_queue(identities: list[Identity]) -> None:
    async with ActorSystem(identities[0]) as system:
        handle = await system.spawn(Echo, name="root")
        async with trio.open_nursery() as nursery:
            errors: list[Exception] = []

            async def slow_then_more() -> None:
                try:
                    await system.invoke(handle, "/slow", 10)
                except RemoteError as exc:
                    errors.append(exc)

            nursery.start_soon(slow_then_more)
            await trio.testing.wait_all_tasks_blocked()
            await system.stop(handle)
        assert [e.type for e in errors] == ["ActorStopped"]  # type: ignore[attr-defined]
        with pytest.raises(RemoteError, match="no actor named"):
            await system.invoke(handle, "/echo", 1)


async def test_function_behaviours(identities: list[Identity]) -> None:
    actor = Actor()

    @actor.on("/add")
    async def add(ctx: Context, body: list[int]) -> int:
        return sum(body)

    async with ActorSystem(identities[0]) as system:
        handle = await system.spawn(actor, name="calc")
        assert await system.invoke(handle, "/add", [1, 2, 3]) == 6


def test_bad_behaviour_paths() -> None:
    for path in ["", "x", "/Upper", "/a//b", "/a/", "/ a"]:
        with pytest.raises(ValueError, match="invalid behaviour path"):
            behaviour(path)


async def test_broadcast_and_subscribe_in_process(identities: list[Identity]) -> None:
    network = MemoryNetwork()
    got: list[tuple[str, Any]] = []

    class Listener(Actor):
        @behaviour("/broadcast/hello")
        async def hello(self, ctx: Context, body: Any) -> None:
            got.append((ctx.system.did, body))

    systems = [ActorSystem(i, AllowAll(), transports=[network.transport()]) for i in identities[:3]]
    async with systems[0], systems[1], systems[2]:
        for system in systems[1:]:
            await system.spawn(Listener, name="root")
            system.subscribe("/nunet/hello", "root")
        await systems[0].broadcast("/nunet/hello", "/broadcast/hello", {"n": 1})
        await trio.testing.wait_all_tasks_blocked()
    assert sorted(got) == sorted((s.did, {"n": 1}) for s in systems[1:])


async def test_answered_invokes_do_not_accumulate_deadlines(identities: list[Identity]) -> None:
    async with ActorSystem(identities[0]) as system:
        handle = await system.spawn(Echo, name="root")
        for n in range(5_000):
            await system.invoke(handle, "/echo", n, timeout=300)
        # Compaction keeps the heap near the number of invokes actually waiting (none here).
        assert len(system._deadlines) <= 2_048


async def test_many_concurrent_timeouts_all_fire(
    identities: list[Identity], autojump_clock: trio.testing.MockClock
) -> None:
    outcomes: list[str] = []
    async with ActorSystem(identities[0]) as system:
        handle = await system.spawn(Echo, name="root")

        async def call(n: int) -> None:
            try:
                await system.invoke(handle, "/slow", 1_000, timeout=1 + n % 7)
            except InvokeTimeout:
                outcomes.append("timeout")

        async with trio.open_nursery() as nursery:
            for n in range(50):
                nursery.start_soon(call, n)
        assert trio.current_time() < 10  # each fired at its own deadline, none waited for 1000
    assert outcomes == ["timeout"] * 50
