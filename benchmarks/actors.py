"""Actor messaging beside raw Trio channels and Pykka, measured interleaved in one run.

``python -m benchmarks.actors`` prints in-process ``invoke`` round trips/s and ``send``
throughput, the same ping-pong over raw Trio memory channels, and Pykka's ask/tell, with the
ratios (goals: invoke >= 0.4x the channel round trip, send >= 0.4x the one-way channel rate, and
ahead of Pykka on both).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import pykka
import trio

from nuactor import Actor, ActorSystem, Context, Identity, behaviour

from ._measure import emit

ROUNDS = 11
ROUND_TRIPS = 2_000
ONE_WAY = 10_000


class Pong(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    @behaviour("/ping")
    async def ping(self, ctx: Context, body: Any) -> Any:
        return body

    @behaviour("/sink")
    async def sink(self, ctx: Context, body: Any) -> None:
        self.received += 1


class PykkaPong(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.received = 0

    def on_receive(self, message: Any) -> Any:
        if message == "count":
            return self.received
        if message == "ping":
            return "pong"
        self.received += 1
        return None


async def rate(run: Callable[[int], Awaitable[None]], count: int) -> float:
    start = time.perf_counter()
    await run(count)
    return count / (time.perf_counter() - start)


def sync_rate(run: Callable[[int], None], count: int) -> float:
    start = time.perf_counter()
    run(count)
    return count / (time.perf_counter() - start)


async def main() -> None:
    results: dict[str, list[float]] = {}

    def record(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)

    pykka_ref = PykkaPong.start()
    try:
        async with ActorSystem(Identity.generate()) as system, trio.open_nursery() as nursery:
            pong = Pong()
            handle = await system.spawn(pong, name="pong")

            # Raw Trio: a task echoing on one channel pair, and a sink counting on another.
            request_send, request_receive = trio.open_memory_channel[object](256)
            reply_send, reply_receive = trio.open_memory_channel[object](256)
            sink_send, sink_receive = trio.open_memory_channel[object](256)
            sink_done = trio.Event()
            sink_target = [0]
            sink_received = [0]

            async def echo() -> None:
                async for item in request_receive:
                    await reply_send.send(item)

            async def sink() -> None:
                async for _ in sink_receive:
                    sink_received[0] += 1
                    if sink_received[0] == sink_target[0]:
                        sink_done.set()

            nursery.start_soon(echo)
            nursery.start_soon(sink)

            async def nuactor_invoke(n: int) -> None:
                for i in range(n):
                    await system.invoke(handle, "/ping", i)

            async def channel_roundtrip(n: int) -> None:
                for i in range(n):
                    await request_send.send(i)
                    await reply_receive.receive()

            async def nuactor_send(n: int) -> None:
                target = pong.received + n
                for i in range(n):
                    await system.send(handle, "/sink", i)
                await system.invoke(handle, "/ping", None)  # everything before it is handled
                assert pong.received == target

            async def channel_oneway(n: int) -> None:
                nonlocal sink_done
                sink_done = trio.Event()
                sink_received[0] = 0
                sink_target[0] = n
                for i in range(n):
                    await sink_send.send(i)
                await sink_done.wait()

            def pykka_ask(n: int) -> None:
                for _ in range(n):
                    pykka_ref.ask("ping")

            def pykka_tell(n: int) -> None:
                before = cast(int, pykka_ref.ask("count"))
                for i in range(n):
                    pykka_ref.tell(i)
                assert cast(int, pykka_ref.ask("count")) == before + n

            for index in range(ROUNDS):
                # Alternate the order each round so drift on a shared machine cancels out.
                order = [0, 1, 2] if index % 2 == 0 else [2, 1, 0]
                for which in order:
                    if which == 0:
                        record("nuactor_invoke", await rate(nuactor_invoke, ROUND_TRIPS))
                        record("nuactor_send", await rate(nuactor_send, ONE_WAY))
                    elif which == 1:
                        record("trio_channel_roundtrip", await rate(channel_roundtrip, ROUND_TRIPS))
                        record("trio_channel_oneway", await rate(channel_oneway, ONE_WAY))
                    else:
                        record("pykka_ask", sync_rate(pykka_ask, ROUND_TRIPS))
                        record("pykka_tell", sync_rate(pykka_tell, ONE_WAY))
            nursery.cancel_scope.cancel()
    finally:
        pykka_ref.stop()

    def ratios(subject: str, baseline: str) -> float:
        pairs = zip(results[subject], results[baseline], strict=True)
        return statistics.median(s / b for s, b in pairs)

    for name in (
        "nuactor_invoke",
        "trio_channel_roundtrip",
        "pykka_ask",
        "nuactor_send",
        "trio_channel_oneway",
        "pykka_tell",
    ):
        emit(name, statistics.median(results[name]), "ops/s")
    emit("ratio_invoke_channel", ratios("nuactor_invoke", "trio_channel_roundtrip"), "ratio")
    emit("ratio_send_channel", ratios("nuactor_send", "trio_channel_oneway"), "ratio")
    emit("ratio_invoke_pykka", ratios("nuactor_invoke", "pykka_ask"), "ratio")
    emit("ratio_send_pykka", ratios("nuactor_send", "pykka_tell"), "ratio")


if __name__ == "__main__":
    trio.run(main)
