"""The null executor on Trio's fake clock: it runs for as long as told, ends as told, stops,
logs one line, and thousands of executions cost nothing."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from dmsnode.errors import ExecutionRefused, ExecutorError
from dmsnode.executors import ExecutionSpec, NullExecutor, State
from dmsnode.resources import Resources

pytestmark = pytest.mark.usefixtures("no_process_left")


def spec(allocation_id: str = "a1", **fields: object) -> ExecutionSpec:
    return ExecutionSpec(allocation_id=allocation_id, command=("train", "--fast"), **fields)  # type: ignore[arg-type]


async def test_it_runs_for_the_time_given_then_completes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with NullExecutor(run_for=5.0) as executor:
        began = trio.current_time()
        execution = await executor.start(spec())
        assert execution.status().state is State.RUNNING
        status = await execution.wait()
        assert trio.current_time() - began == pytest.approx(5.0)
        assert (status.state, status.exit_code, status.reason) == (State.COMPLETED, 0, "")
        assert status.started_at is not None
        assert status.finished_at == pytest.approx(status.started_at + 5.0)
        assert execution.status() == status


async def test_it_fails_with_the_exit_code_given() -> None:
    async with NullExecutor(exit_code=3) as executor:
        status = await (await executor.start(spec())).wait()
    assert (status.state, status.exit_code, status.reason) == (
        State.FAILED,
        3,
        "exited with code 3",
    )


async def test_the_spec_can_say_how_long_and_how_it_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with NullExecutor(run_for=100.0) as executor:
        began = trio.current_time()
        execution = await executor.start(spec(limits={"run_for_ms": 1500, "exit_code": 2}))
        status = await execution.wait()
        assert trio.current_time() - began == pytest.approx(1.5)
        assert (status.state, status.exit_code) == (State.FAILED, 2)
        with pytest.raises(ExecutionRefused, match="run_for_ms"):
            await executor.start(spec(limits={"run_for_ms": -1}))


async def test_stop_ends_it_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with NullExecutor(run_for=60.0) as executor:
        execution = await executor.start(spec())
        waited: list[State] = []

        async def waiter() -> None:
            waited.append((await execution.wait()).state)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(1.0)
            with pytest.raises(ExecutorError, match="still running"):
                await execution.cleanup()
            status = await execution.stop(grace=5)
        assert waited == [State.STOPPED]
        assert (status.state, status.reason) == (State.STOPPED, "stopped on request")
        assert await execution.stop() == status
        assert execution.status() == status
        await execution.cleanup()


async def test_it_logs_one_line_and_follow_ends_with_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with NullExecutor(run_for=2.0) as executor:
        execution = await executor.start(spec())
        lines = [line async for line in execution.logs(follow=True)]
        assert execution.status().state is State.COMPLETED
        assert [(line.stream, line.text) for line in lines] == [
            ("stdout", "null executor: train --fast runs for 2 s\n")
        ]
        assert [line async for line in execution.logs(since=time.time() + 60)] == []
        assert len([line async for line in execution.logs(since=lines[0].time)]) == 1
        await execution.cleanup()
        with pytest.raises(ExecutorError, match="cleaned up"):
            _ = [line async for line in execution.logs()]


async def test_stats_are_zeros_with_the_memory_limit() -> None:
    async with NullExecutor() as executor:
        execution = await executor.start(spec(resources=Resources(ram=2**30)))
        stats = await execution.stats()
    assert (stats.cpu_seconds, stats.memory, stats.pids, stats.memory_limit) == (
        0.0,
        0,
        0,
        2**30,
    )


async def test_thousands_at_once_cost_no_tasks(autojump_clock: trio.testing.MockClock) -> None:
    async with NullExecutor(run_for=10.0) as executor:
        tasks_before = trio.lowlevel.current_statistics().tasks_living
        executions = [await executor.start(spec(f"a{i}")) for i in range(5000)]
        assert len({e.id for e in executions}) == 5000
        assert trio.lowlevel.current_statistics().tasks_living == tasks_before
        statuses = []

        async def wait(index: int) -> None:
            statuses.append((await executions[index].wait()).state)

        async with trio.open_nursery() as nursery:
            for index in range(len(executions)):
                nursery.start_soon(wait, index)
        assert statuses == [State.COMPLETED] * 5000


async def test_it_must_be_entered_and_recovers_nothing() -> None:
    executor = NullExecutor()
    with pytest.raises(ExecutorError, match="not entered"):
        await executor.start(spec())
    async with executor:
        assert await executor.recover() == []
        available = await executor.availability()
        assert available.available
        assert available.details["run_for"] == "0 s"
    with pytest.raises(ExecutorError, match="closed"):
        await executor.start(spec())
    with pytest.raises(ValueError, match="negative"):
        NullExecutor(run_for=-1)
