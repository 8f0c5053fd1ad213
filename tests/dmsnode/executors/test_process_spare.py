"""The process executor's spare monitor: it is ready before an execution needs it, belongs to the
executor (nothing of it or of its maker outlives the executor's block, or a node killed
outright), and a spare that died or lost its uid is not used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
import trio

from dmsnode.executors import ExecutionSpec, ProcessExecutor, State, _process

pytestmark = pytest.mark.usefixtures("no_process_left")

ROOT = os.geteuid() == 0
NODE = "did:key:z6MkSpareTestNode"


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie has ended: only its parent's wait is left)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``condition()`` until it holds."""
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 (processes and files: nothing to wait on)
            await trio.sleep(0.01)


def spare_of(executor: ProcessExecutor) -> tuple[int, list[int], list[Path], int | None]:
    """The spare's monitor, its first process(es), its cgroups and its uid."""
    spare = executor._spare
    assert spare is not None
    children = [p.pid for p in psutil.Process(spare.pid).children(recursive=True)]
    groups = [path for _, path, _ in spare.cgroup.groups] if spare.cgroup else []
    return spare.pid, children, groups, spare.uid


def claimed(uid: int | None) -> bool:
    return uid is not None and (_process.UID_CLAIMS / str(uid)).exists()


@pytest.fixture(params=["bwrap", "unshare", "none"])
def sandbox(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def claims_released() -> Iterator[list[int]]:
    """Uids a test let go of without releasing them (a killed node): their claims are
    removed afterwards."""
    uids: list[int] = []
    yield uids
    for uid in uids:
        (_process.UID_CLAIMS / str(uid)).unlink(missing_ok=True)


async def test_a_spare_is_ready_and_leaving_the_executor_leaves_nothing_of_it(
    tmp_path: Path, sandbox: str
) -> None:
    async with ProcessExecutor(tmp_path / "root", node_id=NODE, sandbox=sandbox) as executor:
        if executor.sandbox is None:
            pytest.skip(f"no {sandbox} sandbox here")
        first = executor._spare
        assert first is not None and not gone(first.pid)
        # Its first process is forked and waits in its cgroups before any execution exists.
        await until(lambda: spare_of(executor)[1])
        if first.cgroup is not None:
            await until(lambda: first.cgroup is not None and first.cgroup.pids())
            assert first.cgroup.pids() == set(spare_of(executor)[1])
        assert claimed(first.uid) == ROOT
        execution = await executor.start(ExecutionSpec(allocation_id="a", command=("true",)))
        assert execution.pid == first.pid  # the spare became this execution's monitor
        assert (await execution.wait()).state is State.COMPLETED
        await execution.cleanup()
        assert not claimed(first.uid)
        await until(lambda: executor._spare is not None)  # the next one, forked by the maker
        pid, children, groups, uid = spare_of(executor)
        assert pid != first.pid
        assert executor._maker is not None
        maker = executor._maker.pid
        assert psutil.Process(pid).ppid() == maker
        assert os.getsid(pid) == pid  # a session of its own, to outlive the node
        await until(lambda: spare_of(executor)[1])
        _, children, _, _ = spare_of(executor)
    assert gone(maker)
    assert gone(pid) and all(gone(child) for child in children)
    assert not any(group.exists() for group in groups)
    assert not claimed(uid)
    assert executor._spare is None


async def test_an_execution_from_the_maker_outlives_the_executor_and_is_recovered(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    async with ProcessExecutor(root, node_id=NODE) as first:
        quick = await first.start(ExecutionSpec(allocation_id="quick", command=("true",)))
        await quick.wait()
        await until(lambda: first._spare is not None)
        assert first._maker is not None
        maker = first._maker.pid
        running = await first.start(
            ExecutionSpec(
                allocation_id="running",
                command=("sh", "-c", "echo up; while [ ! -e go ]; do sleep 0.02; done; exit 5"),
            )
        )
        assert running.pid is not None and psutil.Process(running.pid).ppid() == maker
        async for line in running.logs(follow=True):
            assert line.text == "up\n"
            break
    assert gone(maker) and not gone(running.pid)  # the maker went, not what it made
    async with ProcessExecutor(root, node_id=NODE) as second:
        found = {execution.id: execution for execution in await second.recover()}
        again = found["running"]
        assert again.status().state is State.RUNNING
        (root / "running" / "work" / "go").touch()
        with trio.fail_after(10):
            status = await again.wait()
        assert (status.state, status.exit_code) == (State.FAILED, 5)
        for execution in found.values():
            await execution.cleanup()


async def test_availability_outside_the_block_starts_no_spare(tmp_path: Path) -> None:
    executor = ProcessExecutor(tmp_path / "root", node_id=NODE)
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    assert (await executor.availability()).available
    assert {p.pid for p in me.children(recursive=True)} <= before


async def test_a_spare_that_died_is_not_used(tmp_path: Path) -> None:
    async with ProcessExecutor(tmp_path / "root", node_id=NODE) as executor:
        pid, _, groups, uid = spare_of(executor)
        os.kill(pid, signal.SIGKILL)
        await until(lambda: gone(pid))
        execution = await executor.start(
            ExecutionSpec(allocation_id="a", command=("sh", "-c", "echo fine"))
        )
        assert execution.pid != pid  # a monitor of its own
        status = await execution.wait()
        assert (status.state, status.exit_code) == (State.COMPLETED, 0)
        assert [line.text async for line in execution.logs()] == ["fine\n"]
        await execution.cleanup()
        assert not any(group.exists() for group in groups)  # the dead spare's were removed
        assert not claimed(uid)
        await until(lambda: executor._spare is not None)  # and it was replaced


async def test_starts_at_once_each_get_a_monitor_of_their_own(tmp_path: Path) -> None:
    """Starts that come faster than spares are made wait for the next spare or start a
    monitor of their own; each execution has its own monitor and outcome."""
    statuses = {}
    monitors = set()
    async with ProcessExecutor(tmp_path / "root", node_id=NODE) as executor:

        async def run(index: int) -> None:
            execution = await executor.start(
                ExecutionSpec(allocation_id=f"a{index}", command=("sh", "-c", f"exit {index}"))
            )
            monitors.add(execution.pid)
            statuses[index] = (await execution.wait()).exit_code
            await execution.cleanup()

        async with trio.open_nursery() as nursery:
            for index in range(6):
                nursery.start_soon(run, index)
    assert statuses == {index: index for index in range(6)}
    assert len(monitors) == 6


async def test_without_its_maker_spares_are_started_afresh(tmp_path: Path) -> None:
    async with ProcessExecutor(tmp_path / "root", node_id=NODE) as executor:
        assert executor._maker is not None
        maker = executor._maker.pid
        os.kill(maker, signal.SIGKILL)
        for name in ("a", "b"):
            execution = await executor.start(ExecutionSpec(allocation_id=name, command=("true",)))
            assert (await execution.wait()).state is State.COMPLETED
            await execution.cleanup()
            await until(lambda: executor._spare is not None)
        assert executor._maker is None
        spare = executor._spare
        assert spare is not None and psutil.Process(spare.pid).ppid() == os.getpid()
    assert gone(maker)


@pytest.mark.skipif(not ROOT, reason="executions get their own uid only when the node is root")
async def test_a_spare_whose_uid_claim_was_taken_over_does_not_use_that_uid(
    tmp_path: Path,
) -> None:
    async with ProcessExecutor(tmp_path / "root", node_id=NODE) as executor:
        _, _, _, uid = spare_of(executor)
        assert uid is not None
        claim = _process.UID_CLAIMS / str(uid)
        # Another node found the claim stale (the spare waited unrenewed) and took it over.
        claim.unlink()
        claim.write_text("another node\n")
        try:
            execution = await executor.start(ExecutionSpec(allocation_id="a", command=("id",)))
            await execution.wait()
            record = json.loads((execution.directory / "execution.json").read_text())
            assert record["uid"] != uid
            lines = [line.text async for line in execution.logs()]
            assert lines[0].startswith(f"uid={record['uid']} "), lines
            await execution.cleanup()
            assert claim.read_text() == "another node\n"  # left to its owner
        finally:
            claim.unlink(missing_ok=True)


def test_a_spare_ends_with_its_node_when_the_node_is_killed(
    tmp_path: Path, claims_released: list[int]
) -> None:
    """A node killed outright (no executor exit) leaves no spare behind: the spare sees its
    pipe from the node end, ends its first process, removes its cgroups and exits; the maker
    sees its socket end and exits."""
    node = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path

        import psutil, trio
        from dmsnode.executors import ExecutionSpec, ProcessExecutor

        async def main():
            async with ProcessExecutor(Path({str(tmp_path / "root")!r}), node_id="n") as ex:
                execution = await ex.start(ExecutionSpec(allocation_id="a", command=("true",)))
                await execution.wait()
                while ex._spare is None:  # the next spare, from the maker
                    await trio.sleep(0.01)
                spare = ex._spare
                while True:  # until its first process is forked (and in its cgroups)
                    children = psutil.Process(spare.pid).children()
                    if children and (spare.cgroup is None or spare.cgroup.pids()):
                        break
                    await trio.sleep(0.01)
                groups = [str(p) for _, p, _ in spare.cgroup.groups] if spare.cgroup else []
                print(json.dumps(
                    [ex._maker.pid, spare.pid, [c.pid for c in children], groups,
                     [spare.uid, execution._record["uid"]]]
                ))
                sys.stdout.flush()
                await trio.sleep(60)

        trio.run(main)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", node], stdout=subprocess.PIPE, cwd=Path(__file__).parents[3]
    )
    try:
        assert process.stdout is not None
        maker, pid, children, groups, uids = json.loads(process.stdout.readline())
        claims_released.extend(uid for uid in uids if uid is not None)
        process.kill()
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 10
    while not all(gone(p) for p in [maker, pid, *children]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gone(maker)
    assert gone(pid) and all(gone(child) for child in children)
    while any(Path(g).exists() for g in groups) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(Path(group).exists() for group in groups)
