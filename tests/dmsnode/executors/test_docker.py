"""The docker executor against a real Docker daemon.

The daemon is the one ``DOCKER_HOST`` names (``.ci/run`` starts its own and exports it), else
the usual socket; the image is ``DMSNODE_TEST_IMAGE`` (a static busybox, built here with
``.ci/build-test-image.sh`` if the daemon lacks it). Without a daemon these tests skip and
say why, unless ``DMSNODE_REQUIRE_DOCKER=1`` (CI, once its dockerd answered): then they fail.

Every test runs as its own node (a fresh ``nunet.node`` label) and, afterwards, asks the
daemon directly whether any container of that node is left: none may be.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import trio

from dmsnode.errors import ExecutionRefused, ExecutorError, ImageUnavailable
from dmsnode.executors import (
    DockerExecutor,
    Execution,
    ExecutionSpec,
    LogLine,
    PortMapping,
    State,
)
from dmsnode.executors._docker import LABEL_ALLOCATION, LABEL_ENSEMBLE, LABEL_NODE
from dmsnode.resources import Resources

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_IMAGE = "dmsnode-test/busybox:latest"
MiB = 1024 * 1024
#: Every wait on a container is bounded by this, so a hang fails instead of stalling.
WAIT = 30.0


# -- the daemon, seen with the standard library only --------------------------------------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class DockerApi:
    """The few calls the tests check with, independent of the executor under test."""

    url: str

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return _UnixHTTPConnection(parts.path, timeout)
        if parts.scheme in ("tcp", "http"):
            return http.client.HTTPConnection(parts.hostname or "localhost", parts.port or 2375)
        raise ValueError(f"the tests speak to unix:// and tcp:// daemons, not {self.url}")

    def request(self, method: str, path: str, timeout: float = 10.0) -> tuple[int, Any]:
        connection = self._connection(timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        text = body.decode("utf-8", "replace")
        try:
            return response.status, json.loads(text) if text else None
        except json.JSONDecodeError:
            return response.status, text

    def ping(self) -> str | None:
        """Why the daemon cannot be used, or ``None``."""
        try:
            status, body = self.request("GET", "/_ping", timeout=5.0)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return f"cannot reach {self.url}: {exc}"
        return None if status == 200 else f"{self.url} answered /_ping with {status}: {body}"

    def has_image(self, image: str) -> bool:
        return self.request("GET", f"/images/{quote(image, safe='')}/json")[0] == 200

    def containers(self, node_id: str) -> list[dict[str, Any]]:
        filters = quote(json.dumps({"label": [f"{LABEL_NODE}={node_id}"]}))
        status, body = self.request("GET", f"/containers/json?all=1&filters={filters}")
        assert status == 200, body
        return list(body)

    def inspect(self, container: str) -> dict[str, Any]:
        status, body = self.request("GET", f"/containers/{container}/json")
        assert status == 200, body
        return dict(body)

    def remove(self, container: str) -> None:
        self.request("DELETE", f"/containers/{container}?force=1")


@dataclass(frozen=True)
class Daemon:
    api: DockerApi
    image: str


@pytest.fixture(scope="session")
def daemon() -> Daemon:
    """A Docker daemon that answers and has the test image, or a skip that says why."""
    required = os.environ.get("DMSNODE_REQUIRE_DOCKER") == "1"

    def unusable(reason: str) -> None:
        if required:
            pytest.fail(f"DMSNODE_REQUIRE_DOCKER=1 but {reason}")
        pytest.skip(reason)

    url = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    api = DockerApi(url)
    reason = api.ping()
    if reason is not None:
        # .ci/run says why it could not start one, where it could not.
        why = os.environ.get("DMSNODE_NO_DOCKER_REASON")
        unusable(f"no Docker daemon: {why}; {reason}" if why else f"no Docker daemon: {reason}")
    image = os.environ.get("DMSNODE_TEST_IMAGE") or DEFAULT_IMAGE
    if not api.has_image(image):
        build = subprocess.run(
            [str(ROOT / ".ci" / "build-test-image.sh"), image],
            env={**os.environ, "DOCKER_HOST": url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if build.returncode != 0 or not api.has_image(image):
            unusable(f"no test image {image}, and building it failed: {build.stderr.strip()}")
    return Daemon(api, image)


@pytest.fixture
def node_id(daemon: Daemon) -> Iterator[str]:
    """This test's node; afterwards no container of it may be left on the daemon."""
    node = f"test-{uuid.uuid4().hex[:12]}"
    yield node
    left = daemon.api.containers(node)
    for container in left:
        daemon.api.remove(container["Id"])
    assert not left, f"containers left behind: {[c['Names'] for c in left]}"


@pytest.fixture
async def executor(daemon: Daemon, node_id: str) -> AsyncIterator[DockerExecutor]:
    async with DockerExecutor(node_id=node_id, docker_url=daemon.api.url) as executor:
        yield executor


def job(daemon: Daemon, *command: str, **fields: Any) -> ExecutionSpec:
    fields.setdefault("allocation_id", f"alloc-{uuid.uuid4().hex[:8]}")
    fields.setdefault("ensemble_id", "ensemble-1")
    return ExecutionSpec(image=daemon.image, command=command, **fields)


async def finish(execution: Execution) -> None:
    """Stop (at once) and remove: what every test does with what it started."""
    with trio.fail_after(WAIT):
        await execution.stop(grace=0)
        await execution.cleanup()


async def all_logs(execution: Execution, **options: Any) -> list[tuple[str, str]]:
    with trio.fail_after(WAIT):
        async with contextlib.aclosing(execution.logs(**options)) as lines:
            return [(line.stream, line.text) async for line in lines]


async def wait(execution: Execution) -> Any:
    with trio.fail_after(WAIT):
        return await execution.wait()


# -- tests ------------------------------------------------------------------------------------


async def test_the_daemon_is_available(executor: DockerExecutor, daemon: Daemon) -> None:
    availability = await executor.availability()
    assert availability.available, availability.reason
    assert availability.details["url"] == daemon.api.url
    assert availability.details["api_version"]


async def test_runs_to_completion_with_its_output(executor: DockerExecutor, daemon: Daemon) -> None:
    spec = job(daemon, "sh", "-c", "echo hello; echo oops >&2")
    before = time.time()
    execution = await executor.start(spec)
    assert execution.spec == spec
    info = daemon.api.inspect(execution.id)
    assert info["Config"]["Labels"][LABEL_NODE] == executor.node_id
    assert info["Config"]["Labels"][LABEL_ENSEMBLE] == "ensemble-1"
    assert info["Config"]["Labels"][LABEL_ALLOCATION] == spec.allocation_id

    status = await wait(execution)
    assert (status.state, status.exit_code, status.reason) == (State.COMPLETED, 0, "")
    assert status.started_at is not None and status.finished_at is not None
    assert before - 1 <= status.started_at <= status.finished_at <= time.time() + 1
    assert execution.status() == status
    assert sorted(await all_logs(execution)) == [("stderr", "oops\n"), ("stdout", "hello\n")]

    await execution.cleanup()
    assert daemon.api.containers(executor.node_id) == []
    with pytest.raises(ExecutorError, match="cleaned up"):
        await all_logs(execution)


async def test_a_non_zero_exit_is_a_failure_with_its_code(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    execution = await executor.start(job(daemon, "sh", "-c", "exit 3"))
    status = await wait(execution)
    assert (status.state, status.exit_code, status.reason) == (
        State.FAILED,
        3,
        "exited with code 3",
    )
    await execution.cleanup()


async def test_logs_stream_while_it_runs_and_stay_after(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    execution = await executor.start(
        job(daemon, "sh", "-c", "echo one; sleep 0.4; echo two >&2; sleep 0.4; echo three")
    )
    seen: list[tuple[LogLine, State]] = []
    with trio.fail_after(WAIT):
        async with contextlib.aclosing(execution.logs(follow=True)) as lines:
            async for line in lines:
                seen.append((line, execution.status().state))
    assert [(line.stream, line.text) for line, _ in seen] == [
        ("stdout", "one\n"),
        ("stderr", "two\n"),
        ("stdout", "three\n"),
    ]
    assert seen[0][1] is State.RUNNING  # the first line came while it still ran
    times = [line.time for line, _ in seen]
    assert times == sorted(times)

    assert (await wait(execution)).state is State.COMPLETED
    after = [(line.stream, line.text) for line, _ in seen]
    assert await all_logs(execution) == after
    assert await all_logs(execution, follow=True) == after  # follows a finished one to its end
    assert await all_logs(execution, since=seen[1][0].time) == after[1:]
    await execution.cleanup()


async def test_env_entrypoint_working_dir_and_user(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    execution = await executor.start(
        job(
            daemon,
            'echo "$GREETING"; pwd; id -u',
            entrypoint=("/bin/sh", "-c"),
            env={"GREETING": "hello there"},
            working_dir="/tmp",
            user="65534",
        )
    )
    assert (await wait(execution)).state is State.COMPLETED
    assert await all_logs(execution) == [
        ("stdout", "hello there\n"),
        ("stdout", "/tmp\n"),
        ("stdout", "65534\n"),
    ]
    await execution.cleanup()


async def test_a_memory_hog_is_killed_and_reported_as_out_of_memory(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    # dd's one 64 MiB block is a buffer it fills: four times what it may have.
    execution = await executor.start(
        job(
            daemon,
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=64M",
            "count=1",
            resources=Resources(ram=16 * MiB),
        )
    )
    status = await wait(execution)
    assert status.state is State.FAILED
    assert status.reason == "killed: out of memory (limit 16 MiB)"
    assert status.exit_code == 137
    await execution.cleanup()


async def test_cpu_pids_and_open_files_limits(executor: DockerExecutor, daemon: Daemon) -> None:
    execution = await executor.start(
        job(
            daemon,
            "sh",
            "-c",
            "ulimit -n; for i in $(seq 20); do sleep 1 & done; wait",
            resources=Resources(cpu_cores=0.5, ram=64 * MiB),
            limits={"pids": 8, "open_files": 64},
        )
    )
    host = daemon.api.inspect(execution.id)["HostConfig"]
    assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (500_000_000, 64 * MiB, 8)
    await wait(execution)
    logs = await all_logs(execution)
    assert ("stdout", "64\n") in logs
    assert any(stream == "stderr" and "can't fork" in text for stream, text in logs), logs
    await execution.cleanup()


async def test_stats_while_it_runs(executor: DockerExecutor, daemon: Daemon) -> None:
    execution = await executor.start(
        job(
            daemon,
            "sh",
            "-c",
            "while :; do :; done",
            resources=Resources(cpu_cores=0.5, ram=64 * MiB),
        )
    )
    try:
        with trio.fail_after(WAIT):
            stats = await execution.stats()
        assert stats.cpu_seconds is not None and stats.cpu_seconds > 0
        assert stats.memory is not None and stats.memory > 0
        assert stats.memory_limit == 64 * MiB
        assert stats.pids is not None and stats.pids >= 1
        if stats.cpu_percent is not None:  # needs two samples; half a core at most
            assert 0 < stats.cpu_percent < 75
    finally:
        await finish(execution)


async def test_stop_asks_first(executor: DockerExecutor, daemon: Daemon) -> None:
    execution = await executor.start(
        job(
            daemon,
            "sh",
            "-c",
            'trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done',
        )
    )
    with trio.fail_after(WAIT):
        async with contextlib.aclosing(execution.logs(follow=True)) as lines:
            async for line in lines:
                if line.text == "ready\n":
                    break
    started = time.monotonic()
    with trio.fail_after(WAIT):
        status = await execution.stop(grace=20)
    assert time.monotonic() - started < 10
    assert (status.state, status.exit_code, status.reason) == (
        State.STOPPED,
        0,
        "stopped on request",
    )
    assert ("stdout", "got TERM\n") in await all_logs(execution)
    await execution.cleanup()


async def test_stop_kills_after_the_grace(executor: DockerExecutor, daemon: Daemon) -> None:
    # sleep as PID 1 has no handler for SIGTERM: the kernel ignores it.
    execution = await executor.start(job(daemon, "sleep", "60"))
    started = time.monotonic()
    with trio.fail_after(WAIT):
        status = await execution.stop(grace=1)
    assert 1 <= time.monotonic() - started < 10
    assert (status.state, status.exit_code) == (State.STOPPED, 137)
    assert status.reason == "stopped on request (killed after 1 s of grace)"
    assert await execution.stop() == status  # again: nothing more to do
    await execution.cleanup()


async def test_a_missing_image_fails_fast_and_names_it(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    started = time.monotonic()
    image = f"dmsnode-test/absent-{uuid.uuid4().hex[:6]}:never"
    with pytest.raises(ImageUnavailable, match=image.replace(".", r"\.")):
        await executor.start(ExecutionSpec(allocation_id="a", image=image))
    assert time.monotonic() - started < 20


async def test_a_command_that_cannot_run_is_an_error_and_leaves_nothing(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    with pytest.raises(ExecutorError, match="/no/such/program"):
        await executor.start(job(daemon, "/no/such/program"))
    assert daemon.api.containers(executor.node_id) == []


async def test_privileged_only_where_the_node_allows_it(
    executor: DockerExecutor, daemon: Daemon, node_id: str
) -> None:
    with pytest.raises(ExecutionRefused, match="privileged"):
        await executor.start(job(daemon, "true", privileged=True))
    assert daemon.api.containers(node_id) == []

    async with DockerExecutor(
        node_id=node_id, docker_url=daemon.api.url, allow_privileged=True
    ) as permissive:
        refused_by_runtime = ""
        try:
            execution = await permissive.start(job(daemon, "true", privileged=True))
        except ExecutionRefused:
            raise
        except ExecutorError as exc:
            refused_by_runtime = str(exc)
        if refused_by_runtime:
            # Passed on, but this machine's daemon cannot grant every capability (a
            # sandboxed host): the runtime's refusal, not the node's.
            assert "unable to apply caps" in refused_by_runtime
            assert daemon.api.containers(node_id) == []
            return
        assert daemon.api.inspect(execution.id)["HostConfig"]["Privileged"] is True
        assert (await wait(execution)).state is State.COMPLETED
        await execution.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except (OSError, urllib.error.URLError, http.client.HTTPException):
        return None


async def test_a_published_port_answers_on_the_host(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    port = free_port()
    execution = await executor.start(
        job(
            daemon,
            "sh",
            "-c",
            "echo hello-from-the-container > /www/index.html; exec httpd -f -p 8080 -h /www",
            ports=(PortMapping(port, 8080),),
        )
    )
    try:
        body = None
        with trio.move_on_after(WAIT):
            while body is None:
                body = await trio.to_thread.run_sync(fetch, f"http://127.0.0.1:{port}/")
                if body is None:
                    await trio.sleep(0.1)
        assert body == "hello-from-the-container\n"
    finally:
        await finish(execution)


async def test_recover_reattaches_after_a_restart(daemon: Daemon, node_id: str) -> None:
    url = daemon.api.url
    async with DockerExecutor(node_id=node_id, docker_url=url) as before:
        running = await before.start(
            job(
                daemon,
                "sh",
                "-c",
                "echo before; sleep 1.5; echo after",
                resources=Resources(cpu_cores=0.5, ram=32 * MiB),
                labels={"team": "blue"},
            )
        )
        failed = await before.start(job(daemon, "sh", "-c", "exit 4"))
    # The node is gone (its executor closed): its containers are not.
    assert daemon.api.inspect(running.id)["State"]["Running"] is True

    async with DockerExecutor(node_id=f"{node_id}-other", docker_url=url) as stranger:
        assert await stranger.recover() == []

    async with DockerExecutor(node_id=node_id, docker_url=url) as after:
        found = {execution.id: execution for execution in await after.recover()}
        assert set(found) == {running.id, failed.id}
        again = found[running.id]
        assert again.status().state is State.RUNNING
        assert again.spec.allocation_id == running.spec.allocation_id
        assert again.spec.ensemble_id == "ensemble-1"
        assert again.spec.labels == {"team": "blue"}
        assert again.spec.resources.ram == 32 * MiB
        assert again.spec.command == running.spec.command
        assert [e.id for e in await after.recover()].count(running.id) == 1  # same one again

        status = await wait(again)
        assert (status.state, status.exit_code) == (State.COMPLETED, 0)
        assert await all_logs(again) == [("stdout", "before\n"), ("stdout", "after\n")]

        gone = await wait(found[failed.id])
        assert (gone.state, gone.exit_code) == (State.FAILED, 4)
        for execution in found.values():
            await execution.cleanup()


async def test_a_cancelled_start_leaves_no_container(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    # Cancel start() at every stage it has: image check, create, start, inspect, and after.
    for delay in (0, 0.001, 0.003, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3):
        started = None
        with trio.move_on_after(delay):
            started = await executor.start(job(daemon, "sleep", "30"))
        if started is not None:
            await finish(started)
        assert daemon.api.containers(executor.node_id) == [], f"after a cancel at {delay} s"


async def test_cancelled_waits_leave_it_running_and_a_cancelled_stop_kills(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    execution = await executor.start(job(daemon, "sleep", "30"))
    with trio.move_on_after(0.2):
        await execution.wait()
    with trio.move_on_after(0.2):
        async with contextlib.aclosing(execution.logs(follow=True)) as lines:
            async for _ in lines:
                pass
    with trio.move_on_after(0.1):
        await execution.stats()
    assert daemon.api.inspect(execution.id)["State"]["Running"] is True
    assert execution.status().state is State.RUNNING

    with trio.move_on_after(0.3):
        await execution.stop(grace=20)  # sleep ignores SIGTERM: cancelled during the grace
    status = await wait(execution)
    assert (status.state, status.exit_code) == (State.STOPPED, 137)
    await execution.cleanup()


async def test_closing_the_executor_during_a_stop_kills(daemon: Daemon, node_id: str) -> None:
    url = daemon.api.url
    errors: list[ExecutorError] = []
    # The executor closes (its block ends) while stop() waits out the grace in the nursery.
    async with (
        trio.open_nursery() as nursery,
        DockerExecutor(node_id=node_id, docker_url=url) as executor,
    ):
        execution = await executor.start(job(daemon, "sleep", "30"))

        async def stop() -> None:
            try:
                await execution.stop(grace=20)  # sleep ignores SIGTERM
            except ExecutorError as exc:
                errors.append(exc)

        nursery.start_soon(stop)
        await trio.sleep(0.3)
    assert len(errors) == 1
    assert "closed" in str(errors[0])
    state = daemon.api.inspect(execution.id)["State"]
    assert (state["Running"], state["ExitCode"]) == (False, 137)
    async with DockerExecutor(node_id=node_id, docker_url=url) as again:
        for found in await again.recover():
            await found.cleanup()


async def test_cleanup_refuses_a_running_container(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    execution = await executor.start(job(daemon, "sleep", "30"))
    with pytest.raises(ExecutorError, match="still running"):
        await execution.cleanup()
    await finish(execution)


async def test_a_command_runs_inside_a_running_container(
    executor: DockerExecutor, daemon: Daemon
) -> None:
    """``run_command`` is ``docker exec``: exit code and output; the health checks of type
    ``command`` are judged by it."""
    from dmsnode.ensemble import HealthCheck, HealthResponse
    from dmsnode.provider._health import probe

    execution = await executor.start(job(daemon, "sh", "-c", "echo ready; sleep 60"))
    try:
        with trio.fail_after(WAIT):
            result = await execution.run_command(["sh", "-c", "echo hello; echo oops >&2; exit 3"])
        assert result.exit_code == 3
        assert "hello" in result.output and "oops" in result.output
        ok = HealthCheck(type="command", exec=("sh", "-c", "echo ok"))
        assert await probe(ok, (), execution) is None
        expecting = HealthCheck(
            type="command", exec=("sh", "-c", "echo nope"), response=HealthResponse("ok")
        )
        assert await probe(expecting, (), execution) == "`sh -c echo nope` printed 'nope', not 'ok'"
        failing = HealthCheck(type="command", exec=("sh", "-c", "echo down; exit 1"))
        assert (
            await probe(failing, (), execution)
            == "`sh -c echo down; exit 1` exited with code 1: down"
        )
        slow = HealthCheck(type="command", exec=("sleep", "5"), timeout=0.5, interval=1.0)
        assert await probe(slow, (), execution) == "`sleep 5` did not finish within 0.5 s"
    finally:
        await finish(execution)
