"""The process executor with real processes, in every sandbox this machine has: outcomes, logs,
limits, stops, escape attempts, recovery after a restart, cancellation. Nothing may be left
running after a test (checked with psutil)."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
import trio

from dmsnode.errors import ExecutionRefused, ExecutorError, ExecutorUnavailable
from dmsnode.executors import (
    ExecutionSpec,
    LogLine,
    PortMapping,
    ProcessExecution,
    ProcessExecutor,
    State,
    _cgroups,
    _process,
    _sandbox,
)
from dmsnode.executors._process import DEFAULT_UID_BASE, UID_RANGE, final_status
from dmsnode.resources import Gpu, Resources

pytestmark = pytest.mark.usefixtures("no_process_left", "no_execution_user_left")

MiB = 2**20
ROOT = os.geteuid() == 0
NODE = "did:key:z6MkTestNode"
_ids = itertools.count()


@pytest.fixture
def no_execution_user_left() -> Iterator[None]:
    """No process of an execution's own user survives the test (they run outside the test's
    process tree once reparented, so the tree check alone would miss them)."""
    yield
    deadline = time.monotonic() + 3.0
    while True:
        left = _execution_processes()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    assert not left, f"execution processes left behind: {[p.pid for p in left]}"


def _execution_processes() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["uids"]):
        uids = process.info["uids"]
        if uids is not None and DEFAULT_UID_BASE <= uids.real < DEFAULT_UID_BASE + UID_RANGE:
            found.append(process)
    return found


def spec(script: str, **fields: object) -> ExecutionSpec:
    """A spec running ``sh -c script`` under a fresh allocation id."""
    return ExecutionSpec(
        allocation_id=f"alloc-{next(_ids)}",
        command=("sh", "-c", script),
        **fields,  # type: ignore[arg-type]
    )


async def collect(execution: ProcessExecution, **options: object) -> list[LogLine]:
    return [line async for line in execution.logs(**options)]  # type: ignore[arg-type]


async def first_line(execution: ProcessExecution, text: str, timeout: float = 10.0) -> LogLine:
    """Follow the logs until a line holds ``text``."""
    with trio.fail_after(timeout):
        async for line in execution.logs(follow=True):
            if text in line.text:
                return line
    raise AssertionError(f"the execution ended without writing {text!r}")


@pytest.fixture(params=["bwrap", "unshare", "none"])
async def executor(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[ProcessExecutor]:
    """A process executor with each sandbox, skipped where that sandbox cannot work here."""
    async with ProcessExecutor(tmp_path / "root", node_id=NODE, sandbox=request.param) as ex:
        available = await ex.availability()
        if not available.available:
            pytest.skip(f"no {request.param} sandbox here: {available.reason}")
        yield ex


def system_python() -> str:
    """A Python under /usr (bound into every sandbox), or skip."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            return candidate
    pytest.skip("no python3 under /usr to run a memory hog with")


# -- outcomes and logs -----------------------------------------------------------------------


async def test_a_command_runs_to_completion(executor: ProcessExecutor) -> None:
    execution = await executor.start(spec("echo hello"))
    assert execution.status().state is State.RUNNING
    status = await execution.wait()
    assert (status.state, status.exit_code, status.reason) == (State.COMPLETED, 0, "")
    assert status.started_at is not None and status.finished_at is not None
    assert status.started_at <= status.finished_at
    assert [(line.stream, line.text) for line in await collect(execution)] == [
        ("stdout", "hello\n")
    ]
    assert execution.directory == executor.root / execution.spec.allocation_id
    await execution.cleanup()


async def test_an_exit_code_is_kept_with_the_reason(executor: ProcessExecutor) -> None:
    status = await (await executor.start(spec("exit 3"))).wait()
    assert (status.state, status.exit_code, status.reason) == (
        State.FAILED,
        3,
        "exited with code 3",
    )


async def test_a_command_that_does_not_exist_fails_saying_so(executor: ProcessExecutor) -> None:
    execution = await executor.start(
        ExecutionSpec(allocation_id="missing", command=("no-such-command-here", "x"))
    )
    status = await execution.wait()
    assert status.state is State.FAILED
    assert status.exit_code == 127
    assert status.reason.startswith("could not run 'no-such-command-here'"), status.reason


async def test_stdout_and_stderr_are_told_apart_and_since_filters(
    executor: ProcessExecutor,
) -> None:
    execution = await executor.start(
        spec("echo out; echo err >&2; sleep 0.3; echo late; printf partial")
    )
    await execution.wait()
    lines = await collect(execution)
    texts = [(line.stream, line.text) for line in lines]
    assert texts[-2:] == [("stdout", "late\n"), ("stdout", "partial")]
    assert sorted(texts[:2]) == [("stderr", "err\n"), ("stdout", "out\n")]
    late = lines[-2].time
    assert late - lines[0].time >= 0.25
    assert [line.text for line in await collect(execution, since=late)] == ["late\n", "partial"]
    assert await collect(execution, since=time.time() + 60) == []


async def test_logs_stream_while_it_runs_and_stop_when_it_ends(
    executor: ProcessExecutor,
) -> None:
    execution = await executor.start(
        spec("echo one; while [ ! -e go ]; do sleep 0.02; done; echo two")
    )
    seen: list[tuple[str, State]] = []
    with trio.fail_after(10):
        async for line in execution.logs(follow=True):
            seen.append((line.text, execution.status().state))
            if line.text == "one\n":
                (execution.work_dir / "go").touch()
    assert seen == [("one\n", State.RUNNING), ("two\n", seen[1][1])]
    assert (await execution.wait()).state is State.COMPLETED


async def test_stats_while_running_and_after(executor: ProcessExecutor) -> None:
    execution = await executor.start(spec("echo up; while [ ! -e go ]; do sleep 0.02; done"))
    await first_line(execution, "up")
    stats = await execution.stats()
    assert stats.pids is not None and stats.pids >= 1
    assert stats.memory is not None and stats.memory > 0
    assert stats.cpu_seconds is not None and stats.cpu_seconds >= 0
    assert (await execution.stats()).cpu_percent is not None
    (execution.work_dir / "go").touch()
    await execution.wait()
    assert (await execution.stats()).pids == 0


async def test_the_work_dir_by_its_path_is_the_work_dir(executor: ProcessExecutor) -> None:
    reachable = all(p.stat().st_mode & 0o001 for p in executor.root.parents)
    if executor.sandbox == "none" and ROOT and not reachable:
        pytest.skip("the root's parents are closed to other users: only the cwd reaches it")
    execution = await executor.start(spec('echo x > "$HOME/by-path" && echo x > by-cwd'))
    assert (await execution.wait()).state is State.COMPLETED
    assert {p.name for p in execution.work_dir.iterdir()} == {"by-path", "by-cwd"}


# -- limits ----------------------------------------------------------------------------------


async def test_a_memory_hog_is_killed_and_reported(executor: ProcessExecutor) -> None:
    hog = "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"  # doubles a string: 1 GiB in 26 steps
    if not executor._cgroups or "memory" not in executor._cgroups.controllers:
        hog = f"exec {system_python()} -c 'b = []\nwhile True: b.append(bytearray(16 << 20))'"
    execution = await executor.start(spec(hog, resources=Resources(ram=64 * MiB)))
    with trio.fail_after(20):
        status = await execution.wait()
    assert status.state is State.FAILED
    assert "out of memory (limit 64 MiB)" in status.reason, status.reason


async def test_a_memory_hog_is_stopped_by_the_rlimit_without_cgroups(tmp_path: Path) -> None:
    python = system_python()
    async with ProcessExecutor(tmp_path / "root", node_id=NODE, cgroups=False) as executor:
        hog = f"exec {python} -c 'b = []\nwhile True: b.append(bytearray(16 << 20))'"
        execution = await executor.start(spec(hog, resources=Resources(ram=128 * MiB)))
        status = await execution.wait()
    assert (status.state, status.exit_code) == (State.FAILED, 1)
    assert status.reason == (
        "out of memory (limit 128 MiB), enforced as an address-space rlimit"
    ), status.reason


async def test_the_cpu_time_limit_kills(executor: ProcessExecutor) -> None:
    execution = await executor.start(spec("while :; do :; done", limits={"cpu_seconds": 1}))
    with trio.fail_after(20):
        status = await execution.wait()
    assert status.state is State.FAILED
    assert status.reason == "killed: CPU time limit (SIGXCPU)", status.reason
    assert status.exit_code == 128 + 24


async def test_a_fork_bomb_is_contained_and_the_node_carries_on(
    executor: ProcessExecutor,
) -> None:
    if not ROOT and not (executor._cgroups and "pids" in executor._cgroups.controllers):
        pytest.skip("without root or a pids cgroup the pids limit is per user (docs)")
    bomb = await executor.start(
        spec("sleep 30 & echo go; b() { b & b; }; (b); wait", limits={"pids": 16})
    )
    await first_line(bomb, "go")
    most = 0
    for _ in range(20):  # 0.4 s of sampling while it churns
        processes, _ = bomb._members()
        most = max(most, len(processes))
        await trio.sleep(0.02)
    assert 0 < most <= 16 + 2  # the sandbox's launcher and init may come on top
    if ROOT:  # the execution's own user: RLIMIT_NPROC holds it to 16 however it forks
        assert len(_execution_processes()) <= 16
    other = await executor.start(spec("echo still here"))
    assert (await other.wait()).state is State.COMPLETED
    status = await bomb.stop(grace=0.2)
    assert status.state is State.STOPPED
    assert any("Cannot fork" in line.text for line in await collect(bomb))


async def test_open_files_are_limited(executor: ProcessExecutor) -> None:
    status = await (
        await executor.start(spec('test "$(ulimit -n)" = 64', limits={"open_files": 64}))
    ).wait()
    assert status.state is State.COMPLETED, status


# -- stopping ----------------------------------------------------------------------------------


async def test_stop_lets_a_process_that_handles_sigterm_exit_cleanly(
    executor: ProcessExecutor,
) -> None:
    execution = await executor.start(
        spec('trap "echo bye; exit 0" TERM; echo ready; while :; do sleep 0.05; done')
    )
    await first_line(execution, "ready")
    began = time.monotonic()
    status = await execution.stop(grace=10)
    assert time.monotonic() - began < 5
    assert (status.state, status.exit_code, status.reason) == (
        State.STOPPED,
        0,
        "stopped on request",
    )
    assert "bye\n" in [line.text for line in await collect(execution)]


async def test_stop_kills_a_process_that_ignores_sigterm_after_the_grace(
    executor: ProcessExecutor,
) -> None:
    execution = await executor.start(spec('trap "" TERM; echo ready; while :; do sleep 0.05; done'))
    await first_line(execution, "ready")
    began = time.monotonic()
    status = await execution.stop(grace=0.5)
    assert time.monotonic() - began >= 0.5
    assert status.state is State.STOPPED
    assert status.reason == "stopped on request (killed after 0.5 s of grace)"
    assert status.exit_code == 137
    assert await execution.stop() == status  # stopping again changes nothing


# -- escapes -----------------------------------------------------------------------------------


async def test_escape_attempts_are_contained(
    executor: ProcessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"secret-{os.getpid()}-{time.time_ns()}"
    monkeypatch.setenv("DMS_PASSPHRASE", secret)
    token = f"dms-escape-{time.time_ns()}"
    home = Path.home()
    targets = {"etc": Path("/etc") / token, "home": home / token, "tmp": Path("/tmp") / token}
    script = f"""
        echo x > /etc/{token} && echo wrote-etc
        echo x > {home}/{token} && echo wrote-home
        echo x > /tmp/{token} && echo wrote-tmp
        echo x > ../exit.json && echo forged-exit
        cat /proc/{os.getpid()}/environ
        env
        echo x > mine && echo wrote-mine
    """
    try:
        execution = await executor.start(spec(script))
        await execution.wait()
        output = "".join(line.text for line in await collect(execution))
        assert secret not in output
        assert "DMS_PASSPHRASE" not in output
        assert "wrote-mine" in output and (execution.work_dir / "mine").exists()
        if ROOT or executor.sandbox != "none":
            assert "wrote-etc" not in output and not targets["etc"].exists()
            assert "wrote-home" not in output and not targets["home"].exists()
        if ROOT:
            assert "forged-exit" not in output
        if executor.sandbox != "none":  # a private /tmp
            assert "wrote-tmp" in output and not targets["tmp"].exists()
        assert f"HOME={execution.work_dir}" in output
        assert (await execution.wait()).state is State.COMPLETED
    finally:
        for target in targets.values():
            with contextlib.suppress(OSError):
                target.unlink()


# -- recovery after a restart ------------------------------------------------------------------


async def test_recover_reattaches_after_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "root"
    async with ProcessExecutor(root, node_id=NODE) as first:
        running = await first.start(
            spec("echo before; while [ ! -e go ]; do sleep 0.02; done; echo after; exit 4")
        )
        done = await first.start(spec("echo quick"))
        await done.wait()
        await first_line(running, "before")
        sandbox = first.sandbox
    # The node is gone; its executions are not.
    monitor = running.pid
    assert monitor is not None and psutil.pid_exists(monitor)
    async with ProcessExecutor(root, node_id=NODE) as second:
        assert second.sandbox == sandbox
        found = {e.id: e for e in await second.recover()}
        assert set(found) == {running.id, done.id}
        again, finished = found[running.id], found[done.id]
        assert isinstance(again, ProcessExecution)
        assert again.status().state is State.RUNNING
        assert again.spec == running.spec
        assert (finished.status().state, finished.status().exit_code) == (State.COMPLETED, 0)
        assert await second.recover() == list(found.values())  # the same objects
        (again.work_dir / "go").touch()
        with trio.fail_after(10):
            status = await again.wait()
        assert (status.state, status.exit_code) == (State.FAILED, 4)
        assert [line.text for line in await collect(again)] == ["before\n", "after\n"]
        assert [line.text for line in await collect(finished)] == ["quick\n"]
        for execution in (again, finished):
            await execution.cleanup()
        assert await second.recover() == []


async def test_recover_ignores_other_nodes_and_a_stop_survives_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "root"
    async with ProcessExecutor(root, node_id=NODE) as first:
        execution = await first.start(spec('trap "" TERM; echo ready; sleep 30'))
        await first_line(execution, "ready")
    async with ProcessExecutor(root, node_id="did:key:z6MkSomeoneElse") as other:
        assert await other.recover() == []
    async with ProcessExecutor(root, node_id=NODE) as second:
        [again] = await second.recover()
        status = await again.stop(grace=0.1)
        assert status.reason == "stopped on request (killed after 0.1 s of grace)"
        await again.cleanup()


# -- cancellation --------------------------------------------------------------------------------


async def test_a_cancelled_start_leaves_nothing(executor: ProcessExecutor) -> None:
    with trio.CancelScope() as scope:
        scope.cancel()
        await executor.start(spec("sleep 30"))
    assert scope.cancelled_caught
    assert [p.name for p in executor.root.iterdir()] == [".lock"]


async def test_a_cancelled_wait_leaves_it_running_and_a_cancelled_stop_kills(
    executor: ProcessExecutor,
) -> None:
    execution = await executor.start(spec('trap "" TERM; echo ready; sleep 30'))
    await first_line(execution, "ready")
    with trio.move_on_after(0.1):
        await execution.wait()
    assert execution.status().state is State.RUNNING
    with trio.move_on_after(0.2) as scope:
        await execution.stop(grace=30)
    assert scope.cancelled_caught
    with trio.fail_after(10):
        status = await execution.wait()
    assert status.state is State.STOPPED
    assert "killed" in status.reason


async def test_leaving_the_executor_cancels_waiters_and_keeps_executions(tmp_path: Path) -> None:
    root = tmp_path / "root"
    async with ProcessExecutor(root, node_id=NODE) as executor:
        execution = await executor.start(spec("echo ready; sleep 30"))
        await first_line(execution, "ready")
    with pytest.raises(ExecutorError, match="closed"):
        await execution.wait()
    with pytest.raises(ExecutorError, match="closed"):
        await executor.start(spec("true"))
    async with ProcessExecutor(root, node_id=NODE) as executor:
        [again] = await executor.recover()
        await again.stop(grace=0.1)


# -- refusals and housekeeping ------------------------------------------------------------------


async def test_specs_it_cannot_run_are_refused(tmp_path: Path) -> None:
    async with ProcessExecutor(tmp_path / "root", node_id=NODE, sandbox="none") as executor:
        refused = {
            "a command": ExecutionSpec(allocation_id="a"),
            "safe directory name": ExecutionSpec(allocation_id="../up", command=("true",)),
            "safe directory name ": ExecutionSpec(allocation_id="a/b", command=("true",)),
            "never runs privileged": spec("true", privileged=True),
            "chooses the user": spec("true", user="root"),
            "does not know the limits": spec("true", limits={"gpus": 1}),
            "at least 1": spec("true", limits={"pids": 0}),
            "limits.network": spec("true", limits={"network": 2}),
            "leaves the work dir": spec("true", working_dir="../x"),
            "must be inside the work directory": spec("true", working_dir="/etc"),
            "cannot give GPUs": spec("true", resources=Resources(gpus=(Gpu("nvidia", 0, "x", 1),))),
            "environment variable": spec("true", env={"A=B": "c"}),
        }
        for words, refused_spec in refused.items():
            with pytest.raises(ExecutionRefused, match=words.strip()):
                await executor.start(refused_spec)
        assert [p.name for p in executor.root.iterdir()] == [".lock"]


async def test_the_environment_working_dir_and_ports(tmp_path: Path) -> None:
    async with ProcessExecutor(tmp_path / "root", node_id=NODE) as executor:
        execution = await executor.start(
            spec(
                'pwd; echo "$GREETING $DMS_PORT_8080 $DMS_ALLOCATION_ID $DMS_ENSEMBLE_ID"',
                env={"GREETING": "hi"},
                working_dir="sub/dir",
                ensemble_id="ens-1",
                ports=(PortMapping(20001, 8080),),
            )
        )
        await execution.wait()
        texts = [line.text for line in await collect(execution)]
        assert texts == [
            f"{execution.work_dir / 'sub' / 'dir'}\n",
            f"hi 20001 {execution.id} ens-1\n",
        ]


async def test_cleanup_refuses_a_running_execution_then_removes_everything(
    executor: ProcessExecutor,
) -> None:
    execution = await executor.start(spec("echo ready; sleep 30"))
    await first_line(execution, "ready")
    with pytest.raises(ExecutorError, match="still running"):
        await execution.cleanup()
    with pytest.raises(ExecutorError, match="already has an execution"):
        await executor.start(ExecutionSpec(allocation_id=execution.id, command=("true",)))
    groups = [Path(g["path"]) for g in execution._record["cgroups"]]
    await execution.stop(grace=0.1)
    await execution.cleanup()
    await execution.cleanup()  # twice is fine
    assert not execution.directory.exists()
    assert not any(group.exists() for group in groups)
    with pytest.raises(ExecutorError, match="cleaned up"):
        await collect(execution)
    again = await executor.start(ExecutionSpec(allocation_id=execution.id, command=("true",)))
    assert (await again.wait()).state is State.COMPLETED


async def test_availability_says_what_this_machine_gives(executor: ProcessExecutor) -> None:
    available = await executor.availability()
    assert available.available
    assert available.details["sandbox"] == executor.sandbox
    assert available.details["isolation"]
    assert "cgroups" in available.details
    if executor.sandbox == "none":
        assert "no sandbox" in available.details["warning"]


async def test_a_missing_sandbox_makes_the_executor_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which

    def which(name: str, *args: object, **kwargs: object) -> str | None:
        return None if name == "bwrap" else real_which(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_sandbox.shutil, "which", which)
    executor = ProcessExecutor(tmp_path / "root", node_id=NODE, sandbox="bwrap")
    available = await executor.availability()  # outside `async with`: probes on its own
    assert not available.available
    assert available.reason == "the bwrap sandbox is unavailable: bwrap is not installed"
    async with executor:
        with pytest.raises(ExecutorUnavailable, match="bwrap is not installed"):
            await executor.start(spec("true"))
    async with ProcessExecutor(tmp_path / "other", node_id=NODE) as fallback:
        assert fallback.sandbox in ("unshare", "none")


async def test_one_executor_per_root(tmp_path: Path) -> None:
    async with ProcessExecutor(tmp_path / "root", node_id=NODE) as first:
        async with ProcessExecutor(tmp_path / "root", node_id=NODE) as second:
            available = await second.availability()
            assert not available.available
            assert "in use by another process executor" in available.reason
            with pytest.raises(ExecutorUnavailable, match="in use"):
                await second.start(spec("true"))
            with pytest.raises(ExecutorUnavailable, match="in use"):
                await second.recover()
        assert (await first.availability()).available


async def test_a_monitor_that_dies_fails_the_execution_and_kills_what_it_left(
    tmp_path: Path,
) -> None:
    async with ProcessExecutor(tmp_path / "root", node_id=NODE) as executor:
        if executor._cgroups is None:
            pytest.skip("without a cgroup nothing holds what a dead monitor leaves")
        execution = await executor.start(spec("echo ready; sleep 30"))
        await first_line(execution, "ready")
        assert execution.pid is not None
        os.kill(execution.pid, 9)
        with trio.fail_after(10):
            status = await execution.wait()
        assert status.state is State.FAILED
        assert status.reason.startswith("its monitor ended without saying"), status.reason
        assert "was killed" in status.reason
        await execution.cleanup()


async def test_a_monitor_that_cannot_start_fails_the_execution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_process, "_MONITOR", "import sys; sys.exit(3)")
    async with ProcessExecutor(tmp_path / "root", node_id=NODE, sandbox="none") as executor:
        execution = await executor.start(spec("echo never"))
        with trio.fail_after(10):
            status = await execution.wait()
        assert status.state is State.FAILED
        assert status.reason.startswith("its monitor ended without saying"), status.reason
        assert await collect(execution) == []
        await execution.cleanup()


# -- how an ending is told (no processes) -----------------------------------------------------------

RECORD = {
    "started_at": 100.0,
    "argv": ["prog", "arg"],
    "sandbox": "bwrap",
    "privileged": True,
    "limits": {"memory": 64 * MiB, "pids": 16, "cpu_seconds": 2},
    "memory_by": "cgroup",
}


def ended(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "exit_code": 0,
        "signal": None,
        "error": None,
        "finished_at": 101.0,
        "cpu_seconds": 0.1,
        "oom_kills": 0,
        "pids_max": 0,
        "stderr_tail": [],
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    ("record", "end", "stop", "expected"),
    [
        ({}, ended(), None, (State.COMPLETED, 0, "")),
        ({}, ended(exit_code=3), None, (State.FAILED, 3, "exited with code 3")),
        ({}, ended(exit_code=143), None, (State.FAILED, 143, "exited with code 143 (SIGTERM)")),
        ({"sandbox": "none"}, ended(exit_code=None, signal=11), None,
         (State.FAILED, 139, "killed by SIGSEGV")),
        ({"sandbox": "none"}, ended(exit_code=143), None,
         (State.FAILED, 143, "exited with code 143")),
        ({}, ended(exit_code=137, oom_kills=1), None,
         (State.FAILED, 137, "killed: out of memory (limit 64 MiB)")),
        ({}, ended(oom_kills=2), None,
         (State.COMPLETED, 0, "a process was killed: out of memory (limit 64 MiB)")),
        ({}, ended(exit_code=152), None, (State.FAILED, 152, "killed: CPU time limit (SIGXCPU)")),
        ({}, ended(exit_code=137, cpu_seconds=3.0), None,
         (State.FAILED, 137, "killed: CPU time limit (SIGKILL at the hard limit)")),
        ({}, ended(exit_code=2, pids_max=5), None,
         (State.FAILED, 2, "exited with code 2; the limit of 16 processes was reached")),
        ({"memory_by": "rlimit"}, ended(exit_code=1, stderr_tail=["MemoryError"]), None,
         (State.FAILED, 1, "out of memory (limit 64 MiB), enforced as an address-space rlimit")),
        ({}, ended(exit_code=0), {"at": 100.5, "grace": 10},
         (State.STOPPED, 0, "stopped on request")),
        ({}, ended(exit_code=137), {"at": 100.5, "grace": 2, "killed": True},
         (State.STOPPED, 137, "stopped on request (killed after 2 s of grace)")),
        ({}, ended(exit_code=3), {"at": 102.0, "grace": 2},  # it ended before the stop
         (State.FAILED, 3, "exited with code 3")),
        ({}, ended(exit_code=127, stderr_tail=["setpriv: failed to execute prog: No such file or directory"]),
         None, (State.FAILED, 127, "could not run 'prog': No such file or directory")),
        ({"privileged": False}, ended(exit_code=1, stderr_tail=["bwrap: execvp prog: Permission denied"]),
         None, (State.FAILED, 1, "could not run 'prog': Permission denied")),
        ({}, ended(exit_code=1, stderr_tail=["bwrap: Creating new namespace failed: nope"]), None,
         (State.FAILED, 1, "the sandbox could not start: bwrap: Creating new namespace failed: nope")),
        ({"sandbox": "none"}, ended(exit_code=127, error={"stage": "exec", "errno": 2, "message": "No such file or directory"}),
         None, (State.FAILED, 127, "could not run 'prog': No such file or directory")),
        ({"sandbox": "none"}, ended(exit_code=127, error={"stage": "cwd", "errno": 13, "message": "Permission denied"}),
         None, (State.FAILED, 127, "could not start 'prog' (cwd): Permission denied")),
    ],
)  # fmt: skip
def test_how_an_ending_is_told(
    record: dict[str, object],
    end: dict[str, object],
    stop: dict[str, object] | None,
    expected: tuple[State, int, str],
) -> None:
    status = final_status({**RECORD, **record}, end, stop)
    assert (status.state, status.exit_code, status.reason) == expected
    assert (status.started_at, status.finished_at) == (100.0, 101.0)


def test_a_monitor_that_left_no_exit_file() -> None:
    status = final_status({**RECORD, "cgroups": []}, None, None)
    assert status.state is State.FAILED
    assert status.reason.endswith("processes it started may still run")


# -- cgroup discovery (no cgroups touched) --------------------------------------------------------

HYBRID_MOUNTINFO = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
28 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
29 25 0:26 /docker/abc /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
30 25 0:27 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
"""
HYBRID_CGROUP = """\
4:memory:/docker/abc/node
3:cpu,cpuacct:/node.slice
2:pids:/
0::/node.slice
"""


def test_cgroup_mounts_and_own_paths_are_read() -> None:
    mounts = _cgroups._mounts(HYBRID_MOUNTINFO)
    assert [(m.fstype, str(m.point)) for m in mounts] == [
        ("cgroup2", "/sys/fs/cgroup/unified"),
        ("cgroup", "/sys/fs/cgroup/cpu,cpuacct"),
        ("cgroup", "/sys/fs/cgroup/memory"),
        ("cgroup", "/sys/fs/cgroup/pids"),
    ]
    own = _cgroups._own_paths(HYBRID_CGROUP)
    assert own == {"memory": "/docker/abc/node", "cpu": "/node.slice", "cpuacct": "/node.slice",
                   "pids": "/", "": "/node.slice"}  # fmt: skip
    parents = [_cgroups._parent(m, own["" if m.fstype == "cgroup2" else sorted(m.options - {"rw"})[0]])
               for m in mounts]  # fmt: skip
    assert [str(p) for p in parents] == [
        "/sys/fs/cgroup/unified/node.slice",
        "/sys/fs/cgroup/cpu,cpuacct/node.slice",
        "/sys/fs/cgroup/memory/node",  # the mount's root is the container's group
        "/sys/fs/cgroup/pids",
    ]


def test_without_cgroup_mounts_there_is_no_support() -> None:
    support, why = _cgroups.detect(mountinfo="", own="0::/\n")
    assert support is None
    assert "no cgroup memory, cpu, pids controller" in why


@pytest.mark.skipif(not ROOT, reason="executions get their own uid only when the node is root")
async def test_two_nodes_on_one_machine_never_share_an_execution_uid(
    tmp_path: Path, no_execution_user_left: None
) -> None:
    """Each execution runs as its own user; two nodes on one machine (as ``dmsnode demo`` runs
    them) must not hand the same uid to different executions."""
    uids: list[int] = []
    async with (
        ProcessExecutor(tmp_path / "a", node_id="node-a", sandbox="none") as a,
        ProcessExecutor(tmp_path / "b", node_id="node-b", sandbox="none") as b,
        ProcessExecutor(tmp_path / "c", node_id="node-a", sandbox="none") as same_id,
    ):
        executions = [await executor.start(spec("sleep 30")) for executor in (a, b, same_id, a)]
        for execution in executions:
            record = json.loads((execution.directory / "execution.json").read_text())
            uids.append(record["uid"])
        for execution in executions:
            await execution.stop(grace=0.1)
    assert len(set(uids)) == len(uids), uids
