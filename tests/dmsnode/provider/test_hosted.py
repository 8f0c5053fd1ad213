"""A hosted node's allocations on the null executor, under Trio's autojump clock: starting in
dependency order, the failure_recovery strategies, the restart limit, health checks, logs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from dmsnode.ensemble import Ensemble, parse
from dmsnode.executors import NullExecutor, PortMapping
from dmsnode.provider import RESTART_LIMIT, HostedAllocation, HostedNode
from dmsnode.provider._hosted import start_order
from dmsnode.provider._specs import execution_spec


def part(allocations: str, names: str) -> Ensemble:
    return parse(
        f'version: "V1"\nallocations:\n{allocations}\nnodes:\n  n1:\n    allocations: [{names}]\n'
    )


def null(
    name: str,
    *,
    run_for: str = "0",
    exit_code: int = 0,
    recovery: str = "stay_down",
    extra: str = "",
) -> str:
    kind = "service" if run_for == "0" else "task"
    timing = "" if run_for == "0" else f", run_for: {run_for}"
    return (
        f'  {name}:\n    type: {kind}\n    executor: "null"\n'
        f"    resources: {{cpu: {{cores: 1}}, ram: {{size: 1}}, disk: {{size: 1}}}}\n"
        f'    execution: {{type: "null"{timing}, exit_code: {exit_code}}}\n'
        f"    failure_recovery: {recovery}\n{extra}"
    )


class Node:
    """A hosted node running in a nursery, with every status push recorded."""

    def __init__(
        self, ensemble: Ensemble, executor: NullExecutor, ports: dict[str, Any] | None = None
    ) -> None:
        self.pushes: list[tuple[str, str]] = []
        allocations = {
            name: HostedAllocation(
                name,
                spec,
                execution_spec(
                    deployment="d1",
                    slot="n1",
                    name=name,
                    allocation=spec,
                    gpus=(),
                    ports=(ports or {}).get(name, ()),
                    labels={},
                ),
                executor,
            )
            for name, spec in ensemble.allocations.items()
        }
        self.hosted = HostedNode(
            id="d1/n1",
            deployment="d1",
            slot="n1",
            orchestrator="did:key:orchestrator",
            part=ensemble,
            allocations=allocations,
            ports=[],
            notify=lambda node, a: self.pushes.append((a.name, a.state)),
        )

    def __getitem__(self, name: str) -> HostedAllocation:
        return self.hosted.allocations[name]

    async def settle(self, seconds: float = 60) -> None:
        await trio.sleep(seconds)  # the autojump clock makes this instant


@pytest.fixture
async def executor() -> AsyncIterator[NullExecutor]:
    async with NullExecutor() as executor:
        yield executor


async def run(node: Node, nursery: trio.Nursery) -> Node:
    await nursery.start(node.hosted.run)
    return node


def test_start_order_follows_depends_on() -> None:
    ensemble = part(
        null("c", extra="    depends_on: [b]\n")
        + null("b", extra="    depends_on: [a]\n")
        + null("a"),
        "c, b, a",
    )
    assert start_order(ensemble, ["c", "b", "a"]) == ["a", "b", "c"]


async def test_a_task_completes(executor: NullExecutor, autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        node = await run(Node(part(null("job", run_for="2s"), "job"), executor), nursery)
        await node.hosted.start("job")
        assert node["job"].state == "running"
        await node.settle()
        assert node["job"].state == "completed"
        assert node["job"].exit_code == 0
        assert node.hosted.done
        # Its start is the orchestrator's own call (answered in the reply): only the end is
        # pushed.
        assert node.pushes == [("job", "completed")]
        nursery.cancel_scope.cancel()


async def test_stay_down_leaves_a_failure_to_the_orchestrator(
    executor: NullExecutor, autojump_clock: trio.abc.Clock
) -> None:
    async with trio.open_nursery() as nursery:
        node = await run(
            Node(part(null("job", run_for="1s", exit_code=4), "job"), executor), nursery
        )
        await node.hosted.start("job")
        await node.settle()
        assert (node["job"].state, node["job"].exit_code, node["job"].restarts) == ("failed", 4, 0)
        assert node["job"].reason == "exited with code 4"
        nursery.cancel_scope.cancel()


async def test_one_for_one_restarts_up_to_the_limit_then_gives_up(
    executor: NullExecutor, autojump_clock: trio.abc.Clock
) -> None:
    ensemble = part(
        null("job", run_for="1s", exit_code=1, recovery="one_for_one") + null("other"), "job, other"
    )
    async with trio.open_nursery() as nursery:
        node = await run(Node(ensemble, executor), nursery)
        await node.hosted.start("other")
        other_execution = node["other"].execution
        await node.hosted.start("job")
        await node.settle(120)
        job = node["job"]
        assert job.restarts == RESTART_LIMIT
        assert job.gave_up
        assert job.state == "failed"
        assert f"gave up after {RESTART_LIMIT} restarts" in job.reason
        # Each run's output is kept across restarts.
        lines = await job.logs()
        assert len(lines) == RESTART_LIMIT + 1
        # The sibling was never touched.
        assert node["other"].execution is other_execution
        assert node["other"].state == "running"
        nursery.cancel_scope.cancel()


async def test_one_for_all_restarts_every_sibling(
    executor: NullExecutor, autojump_clock: trio.abc.Clock
) -> None:
    ensemble = part(
        null("flaky", run_for="1s", exit_code=1, recovery="one_for_all") + null("steady"),
        "flaky, steady",
    )
    async with trio.open_nursery() as nursery:
        node = await run(Node(ensemble, executor), nursery)
        await node.hosted.start("steady")
        first = node["steady"].execution
        await node.hosted.start("flaky")
        await trio.sleep(1.7)  # failed at 1 s, restarted after 0.5 s
        assert node["steady"].execution is not first
        assert node["steady"].state == "running"
        nursery.cancel_scope.cancel()


async def test_rest_for_one_restarts_those_started_after(
    executor: NullExecutor, autojump_clock: trio.abc.Clock
) -> None:
    ensemble = part(
        null("base")
        + null(
            "mid",
            run_for="1s",
            exit_code=1,
            recovery="rest_for_one",
            extra="    depends_on: [base]\n",
        )
        + null("top", extra="    depends_on: [mid]\n"),
        "base, mid, top",
    )
    async with trio.open_nursery() as nursery:
        node = await run(Node(ensemble, executor), nursery)
        for name in ("base", "mid", "top"):
            await node.hosted.start(name)
        base, top = node["base"].execution, node["top"].execution
        await trio.sleep(1.7)
        assert node["base"].execution is base
        assert node["top"].execution is not top
        assert node["mid"].restarts == 1
        nursery.cancel_scope.cancel()


async def test_stop_is_not_a_failure(
    executor: NullExecutor, autojump_clock: trio.abc.Clock
) -> None:
    async with trio.open_nursery() as nursery:
        node = await run(Node(part(null("web", recovery="one_for_one"), "web"), executor), nursery)
        await node.hosted.start("web")
        await node.hosted.stop_one("web")
        await node.settle()
        assert node["web"].state == "stopped"
        assert node["web"].restarts == 0
        nursery.cancel_scope.cancel()


async def test_an_orchestrator_restart_gives_the_restarts_back(
    executor: NullExecutor, autojump_clock: trio.abc.Clock
) -> None:
    ensemble = part(null("job", run_for="1s", exit_code=1, recovery="one_for_one"), "job")
    async with trio.open_nursery() as nursery:
        node = await run(Node(ensemble, executor), nursery)
        await node.hosted.start("job")
        await node.settle(120)
        assert node["job"].gave_up
        await node.hosted.restart(["job"], fresh=True)
        assert (node["job"].state, node["job"].restarts, node["job"].gave_up) == (
            "running",
            0,
            False,
        )
        nursery.cancel_scope.cancel()


async def serve(status: int, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """A tiny HTTP server answering every request with ``status``."""

    async def answer(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(4096)
            await stream.send_all(f"HTTP/1.0 {status} X\r\n\r\nok".encode())

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(answer, listeners)


HEALTH = "    healthcheck: {type: http, endpoint: 'http://127.0.0.1:8000/health', interval: 5s, retries: 2}\n"


async def test_a_healthy_service(executor: NullExecutor, autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, 200)
        ensemble = part(null("web", extra=HEALTH), "web")
        node = await run(Node(ensemble, executor, {"web": (PortMapping(port, 8000),)}), nursery)
        await node.hosted.start("web")
        await node.settle(30)
        assert node["web"].healthy is True
        assert node["web"].state == "running"
        nursery.cancel_scope.cancel()


async def test_an_unhealthy_service_fails_and_is_restarted(
    executor: NullExecutor, autojump_clock: trio.abc.Clock
) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, 503)
        ensemble = part(null("web", recovery="one_for_one", extra=HEALTH), "web")
        node = await run(Node(ensemble, executor, {"web": (PortMapping(port, 8000),)}), nursery)
        await node.hosted.start("web")
        await node.settle(600)
        web = node["web"]
        assert web.gave_up
        assert web.state == "failed"
        assert web.reason.startswith("unhealthy: HTTP 503 from http://127.0.0.1:8000/health")
        assert ("web", "failed") in node.pushes
        nursery.cancel_scope.cancel()


async def test_a_command_check_the_executor_cannot_run_is_reported_unsupported(
    executor: NullExecutor, autojump_clock: trio.abc.Clock
) -> None:
    check = "    healthcheck: {type: command, exec: [/bin/true], interval: 5s}\n"
    async with trio.open_nursery() as nursery:
        node = await run(Node(part(null("web", extra=check), "web"), executor), nursery)
        await node.hosted.start("web")
        await node.settle(30)
        web = node["web"]
        assert web.state == "running"
        assert web.healthy is None
        assert web.health == (
            "command health checks are not supported by the null executor: judged by its state"
        )
        nursery.cancel_scope.cancel()
