"""The docker executor without a daemon: spec -> container config (limits, GPU device requests,
labels, ports), inspect -> status/spec, stats samples, and what it says when there is no
daemon at all."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dmsnode.errors import ExecutionRefused, ExecutorUnavailable
from dmsnode.executors import ExecutionSpec, PortMapping, State
from dmsnode.executors._docker import (
    LABEL_ALLOCATION,
    LABEL_ENSEMBLE,
    LABEL_NODE,
    DockerExecutor,
    container_config,
    container_name,
    device_requests,
    log_line,
    parse_time,
    spec_from_inspect,
    stats_from_sample,
    status_from_inspect,
)
from dmsnode.resources import Gpu, Resources

MiB = 1024 * 1024
NO_DAEMON = "unix:///nonexistent/docker.sock"


def spec(**fields: Any) -> ExecutionSpec:
    fields.setdefault("allocation_id", "alloc-1")
    fields.setdefault("image", "example/image:1")
    return ExecutionSpec(**fields)


# -- spec -> container config ----------------------------------------------------------------


def test_a_bare_spec_runs_the_image_as_it_is_with_the_nodes_labels() -> None:
    config = container_config(spec(ensemble_id="ens-9"), node_id="node-a")
    assert config["Image"] == "example/image:1"
    assert config["Labels"] == {
        LABEL_NODE: "node-a",
        LABEL_ENSEMBLE: "ens-9",
        LABEL_ALLOCATION: "alloc-1",
    }
    for absent in ("Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts"):
        assert absent not in config
    host = config["HostConfig"]
    assert host["Privileged"] is False
    assert host["RestartPolicy"] == {"Name": "no"}
    assert host["LogConfig"]["Type"] == "json-file"
    for absent in ("NanoCpus", "Memory", "PidsLimit", "Ulimits", "DeviceRequests", "NetworkMode"):
        assert absent not in host
    assert config["Tty"] is False


def test_resources_and_limits_become_the_containers_limits() -> None:
    config = container_config(
        spec(
            resources=Resources(cpu_cores=1.5, ram=256 * MiB),
            limits={"pids": 64, "open_files": 1024, "cpu_seconds": 3600},
        ),
        node_id="n",
    )
    host = config["HostConfig"]
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Memory"] == 256 * MiB
    assert host["MemorySwap"] == 256 * MiB  # no swap on top
    assert host["PidsLimit"] == 64
    assert host["Ulimits"] == [
        {"Name": "nofile", "Soft": 1024, "Hard": 1024},
        {"Name": "cpu", "Soft": 3600, "Hard": 3600},
    ]


def test_a_sliver_of_a_core_is_still_a_limit() -> None:
    host = container_config(spec(resources=Resources(cpu_cores=1e-12)), node_id="n")["HostConfig"]
    assert host["NanoCpus"] == 1


def test_a_limit_no_container_can_enforce_is_refused_by_name() -> None:
    with pytest.raises(ExecutionRefused, match=r"cannot enforce the limit.*disk_iops"):
        container_config(spec(limits={"disk_iops": 5, "pids": 3}), node_id="n")


def test_command_entrypoint_env_working_dir_and_user() -> None:
    config = container_config(
        spec(
            command=("-c", "echo $A"),
            entrypoint=("/bin/sh",),
            env={"A": "1", "B": "x=y"},
            working_dir="/work",
            user="1000:1000",
        ),
        node_id="n",
    )
    assert config["Cmd"] == ["-c", "echo $A"]
    assert config["Entrypoint"] == ["/bin/sh"]
    assert config["Env"] == ["A=1", "B=x=y"]
    assert config["WorkingDir"] == "/work"
    assert config["User"] == "1000:1000"


def test_an_empty_entrypoint_clears_the_images() -> None:
    assert container_config(spec(entrypoint=()), node_id="n")["Entrypoint"] == [""]


def test_the_nodes_labels_win_over_the_specs() -> None:
    config = container_config(
        spec(labels={"team": "blue", LABEL_NODE: "forged", LABEL_ALLOCATION: "other"}),
        node_id="node-a",
    )
    assert config["Labels"]["team"] == "blue"
    assert config["Labels"][LABEL_NODE] == "node-a"
    assert config["Labels"][LABEL_ALLOCATION] == "alloc-1"


def test_ports_are_exposed_and_published_per_protocol() -> None:
    config = container_config(
        spec(
            ports=(
                PortMapping(18080, 80),
                PortMapping(18443, 80),
                PortMapping(15353, 53, "udp"),
            )
        ),
        node_id="n",
        network="dmsnode",
    )
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "18080"}, {"HostIp": "", "HostPort": "18443"}],
        "53/udp": [{"HostIp": "", "HostPort": "15353"}],
    }
    assert config["HostConfig"]["NetworkMode"] == "dmsnode"


def test_privileged_is_passed_on_as_asked() -> None:
    assert container_config(spec(privileged=True), node_id="n")["HostConfig"]["Privileged"]


def test_gpus_become_one_device_request_per_vendor() -> None:
    gpus = (
        Gpu("nvidia", 2, "A100", 40 * 1024 * MiB),
        Gpu("amd", 1, "MI210", 64 * 1024 * MiB),
        Gpu("nvidia", 0, "A100", 40 * 1024 * MiB),
        Gpu("intel", 0, "Max 1100", 48 * 1024 * MiB),
    )
    config = container_config(spec(resources=Resources(gpus=gpus)), node_id="n")
    assert config["HostConfig"]["DeviceRequests"] == [
        {
            "Driver": "nvidia",
            "Count": 0,
            "DeviceIDs": ["0", "2"],
            "Capabilities": [["gpu"]],
            "Options": {},
        },
        {
            "Driver": "cdi",
            "Count": 0,
            "DeviceIDs": ["amd.com/gpu=1"],
            "Capabilities": [],
            "Options": {},
        },
        {
            "Driver": "cdi",
            "Count": 0,
            "DeviceIDs": ["intel.com/gpu=0"],
            "Capabilities": [],
            "Options": {},
        },
    ]


def test_no_gpus_no_device_requests() -> None:
    assert device_requests(()) == []


@pytest.mark.parametrize("allocation", ["alloc-1", "did:key:z6Mk/ü x", "...", "a" * 200])
def test_container_names_are_valid_and_fresh(allocation: str) -> None:
    first, second = container_name(allocation), container_name(allocation)
    assert first != second
    assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", first)
    assert len(first) <= 80


# -- container -> spec, status, stats, logs -------------------------------------------------


def inspect_of(config: dict[str, Any], **state: Any) -> dict[str, Any]:
    """What the daemon's inspect would say of a container made from ``config``."""
    inside = {k: v for k, v in config.items() if k != "HostConfig"}
    if inside.get("Entrypoint") == [""]:
        inside["Entrypoint"] = None  # the daemon reports a cleared entrypoint as null
    return {"Config": inside, "HostConfig": config["HostConfig"], "State": state}


def test_the_spec_is_read_back_from_the_container() -> None:
    original = spec(
        ensemble_id="ens",
        command=("sh", "-c", "true"),
        entrypoint=("/bin/env",),
        env={"A": "1", "B": "x=y"},
        working_dir="/tmp",
        user="65534",
        resources=Resources(
            cpu_cores=0.25,
            ram=64 * MiB,
            gpus=(Gpu("nvidia", 1, "", 0), Gpu("amd", 0, "", 0)),
        ),
        limits={"pids": 10, "open_files": 100, "cpu_seconds": 5},
        ports=(PortMapping(8080, 80), PortMapping(5353, 53, "udp")),
        privileged=True,
        labels={"team": "blue"},
    )
    info = inspect_of(container_config(original, node_id="n"), Status="running")
    assert spec_from_inspect(info) == original


def test_a_running_container_is_running() -> None:
    status = status_from_inspect(
        {"State": {"Status": "running", "StartedAt": "2024-01-02T03:04:05.5Z"}}
    )
    assert status.state is State.RUNNING
    assert status.started_at == parse_time("2024-01-02T03:04:05.5Z")
    assert status.exit_code is None


def test_exit_codes_and_reasons() -> None:
    def status(**state: Any) -> tuple[State, int | None, str]:
        s = status_from_inspect(
            {"State": {"Status": "exited", **state}, "HostConfig": {"Memory": 16 * MiB}}
        )
        return s.state, s.exit_code, s.reason

    assert status(ExitCode=0) == (State.COMPLETED, 0, "")
    assert status(ExitCode=3) == (State.FAILED, 3, "exited with code 3")
    assert status(ExitCode=143) == (State.FAILED, 143, "exited with code 143 (SIGTERM)")
    assert status(ExitCode=137, OOMKilled=True) == (
        State.FAILED,
        137,
        "killed: out of memory (limit 16 MiB)",
    )
    assert status(ExitCode=0, OOMKilled=True) == (
        State.COMPLETED,
        0,
        "a process was killed: out of memory (limit 16 MiB)",
    )
    assert status(ExitCode=127, Error="exec: nope: not found") == (
        State.FAILED,
        127,
        "could not run: exec: nope: not found",
    )


def test_out_of_memory_without_a_limit_says_so() -> None:
    s = status_from_inspect({"State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True}})
    assert s.reason == "killed: out of memory"


def test_stopped_on_request_whatever_the_code() -> None:
    info = {
        "State": {
            "Status": "exited",
            "ExitCode": 137,
            "StartedAt": "2024-01-02T03:04:05Z",
            "FinishedAt": "2024-01-02T03:04:15.000000001Z",
        }
    }
    stopped = status_from_inspect(info, stopped=True, killed_after=2.5)
    assert stopped.state is State.STOPPED
    assert stopped.exit_code == 137
    assert stopped.reason == "stopped on request (killed after 2.5 s of grace)"
    assert stopped.finished_at is not None and stopped.started_at is not None
    assert stopped.finished_at - stopped.started_at == pytest.approx(10.0)
    assert status_from_inspect(info, stopped=True).reason == "stopped on request"


def test_a_start_stamped_after_the_end_is_the_end() -> None:
    s = status_from_inspect(
        {
            "State": {
                "Status": "exited",
                "ExitCode": 0,
                "StartedAt": "2024-01-02T03:04:05.0003Z",
                "FinishedAt": "2024-01-02T03:04:05.0001Z",
            }
        }
    )
    assert s.started_at == s.finished_at == parse_time("2024-01-02T03:04:05.0001Z")


def test_a_container_that_never_started_failed() -> None:
    s = status_from_inspect({"State": {"Status": "created", "ExitCode": 0}})
    assert s.state is State.FAILED
    assert "never started" in s.reason


def test_docker_times() -> None:
    assert parse_time("1970-01-01T00:00:01.250000000Z") == 1.25
    assert parse_time("2024-02-29T12:00:00Z") == 1709208000.0
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("") is None
    with pytest.raises(ValueError, match="not a Docker timestamp"):
        parse_time("yesterday")


def test_log_chunks_lose_their_stamp_and_keep_their_text() -> None:
    line = log_line("stderr", "1970-01-01T00:00:02.5Z two words\n")
    assert (line.stream, line.time, line.text) == ("stderr", 2.5, "two words\n")
    unstamped = log_line("stdout", "no-stamp-here")
    assert unstamped.text == "no-stamp-here"


def sample(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "read": "2024-01-02T03:04:06Z",
        "cpu_stats": {
            "cpu_usage": {"total_usage": 3_000_000_000},
            "system_cpu_usage": 200_000_000_000,
            "online_cpus": 4,
        },
        "precpu_stats": {
            "cpu_usage": {"total_usage": 2_000_000_000},
            "system_cpu_usage": 196_000_000_000,
        },
        "memory_stats": {
            "usage": 50 * MiB,
            "limit": 64 * MiB,
            "stats": {"total_inactive_file": 10 * MiB},
        },
        "pids_stats": {"current": 3},
        "networks": {
            "eth0": {"rx_bytes": 100, "tx_bytes": 10},
            "eth1": {"rx_bytes": 1, "tx_bytes": 2},
        },
    }
    base.update(overrides)
    return base


def test_stats_from_a_cgroup_v1_sample() -> None:
    stats = stats_from_sample(sample())
    assert stats.cpu_seconds == 3.0
    # 1 s of CPU over 4 s of the whole machine's 4 CPUs' time = 100% of one CPU
    assert stats.cpu_percent == pytest.approx(100.0)
    assert stats.memory == 40 * MiB
    assert stats.memory_limit == 64 * MiB
    assert stats.pids == 3
    assert (stats.network_rx, stats.network_tx) == (101, 12)


def test_stats_from_a_cgroup_v2_sample_without_network_or_history() -> None:
    stats = stats_from_sample(
        sample(
            memory_stats={"usage": 5 * MiB, "limit": 8 * MiB, "stats": {"inactive_file": MiB}},
            precpu_stats={"cpu_usage": {"total_usage": 0}},
            networks=None,
        )
    )
    assert stats.memory == 4 * MiB
    assert stats.cpu_percent is None
    assert stats.network_rx is None and stats.network_tx is None


def test_a_stopped_containers_sample_says_nothing() -> None:
    assert stats_from_sample(sample(read="0001-01-01T00:00:00Z")).cpu_seconds is None
    assert stats_from_sample({}).memory is None


# -- without a daemon ------------------------------------------------------------------------


async def test_no_daemon_is_unavailable_with_the_reason_not_an_error() -> None:
    executor = DockerExecutor(node_id="n", docker_url=NO_DAEMON)
    outside = await executor.availability()  # before (or without) entering
    async with executor:
        inside = await executor.availability()
        with pytest.raises(ExecutorUnavailable, match="no Docker daemon"):
            await executor.start(spec())
        with pytest.raises(ExecutorUnavailable, match="no Docker daemon"):
            await executor.recover()
    for availability in (outside, inside):
        assert availability.available is False
        assert availability.reason.startswith("no Docker daemon: ")
        assert "/nonexistent/docker.sock" in availability.reason


async def test_privileged_is_refused_before_asking_docker() -> None:
    async with DockerExecutor(node_id="n", docker_url=NO_DAEMON) as executor:
        with pytest.raises(ExecutionRefused, match="privileged"):
            await executor.start(spec(privileged=True))
        with pytest.raises(ExecutionRefused, match="needs an image"):
            await executor.start(spec(image=""))


def test_an_executor_needs_a_node() -> None:
    with pytest.raises(ValueError, match="node_id"):
        DockerExecutor(node_id="")
