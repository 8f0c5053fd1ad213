"""Reading valid ensembles into records: the examples, NuNet's own files, units, defaults,
templates, and the round trip spec -> dict -> YAML -> spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck as Health
from hypothesis import given, settings
from hypothesis import strategies as st

from dmsnode.ensemble import (
    DockerExecution,
    Ensemble,
    EnsembleInvalid,
    GpuRequest,
    NodePort,
    NullExecution,
    ProcessExecution,
    dump,
    parse,
    parse_data,
    validate,
)
from dmsnode.ensemble._units import (
    exact_bytes,
    exact_duration,
    exact_hz,
    parse_bandwidth,
    parse_duration,
    parse_rtt,
)
from dmsnode.errors import BadRequest
from dmsnode.resources import PortRequest, Resources

EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples" / "ensembles").glob("*.yaml"))
GiB = 1024**3
MiB = 1024**2
DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"


def test_the_examples_are_there() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "hello.yaml",
        "service-pair.yaml",
        "depends-on.yaml",
        "gpu.yaml",
        "process-hello.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid_and_round_trips(path: Path) -> None:
    text = path.read_text()
    assert validate(text) == []
    ensemble = parse(text)
    again = parse(dump(ensemble))
    assert again == ensemble
    assert again.to_dict() == ensemble.to_dict()
    assert parse_data(json.loads(json.dumps(ensemble.to_dict()))) == ensemble


def test_hello() -> None:
    ensemble = parse((EXAMPLES[0].parent / "hello.yaml").read_text())
    hello = ensemble.allocations["hello"]
    assert hello.type == "task" and hello.executor == "docker"
    assert hello.resources.cpu.cores == 0.5
    assert hello.resources.ram.size == 128 * MiB
    assert hello.resources.disk.size == GiB  # a bare number is GiB
    assert hello.execution == DockerExecution(
        image="busybox:1.36", cmd=("echo", "hello from a NuNet ensemble")
    )
    assert hello.dns_name == "hello"  # defaults to the name
    assert hello.failure_recovery == "stay_down"
    assert ensemble.node_of("hello").name == "node1"
    assert ensemble.total() == Resources(cpu_cores=0.5, ram=128 * MiB, disk=GiB)


def test_service_pair() -> None:
    ensemble = parse((EXAMPLES[0].parent / "service-pair.yaml").read_text())
    web, api = ensemble.allocations["web"], ensemble.allocations["api"]
    assert web.resources.ram.size == 256 * MiB
    assert api.resources.ram.size == 512 * MiB  # the template, overridden
    assert api.resources.cpu == web.resources.cpu
    assert api.execution == ProcessExecution(
        command=(
            "/bin/sh",
            "-c",
            "exec python3 -m http.server $DMS_PORT_8001 --bind 127.0.0.1",
        ),
        environment={"PYTHONUNBUFFERED": "1"},
    )
    assert web.healthcheck is not None and web.healthcheck.type == "http"
    assert (web.healthcheck.interval, web.healthcheck.timeout) == (10.0, 2.0)
    assert api.healthcheck is not None and api.healthcheck.retries == 3  # the default
    front, back = ensemble.nodes["front"], ensemble.nodes["back"]
    assert front.ports == (NodePort(private=8000, allocation="web", public=18080),)
    assert back.ports == (NodePort(private=8001, allocation="api", public=0),)  # its only one
    assert back.ports[0].dynamic
    assert front.port_request() == PortRequest(static=(18080,))
    assert back.port_request() == PortRequest(dynamic=1)
    assert ensemble.edge_constraints[0].rtt == 100
    assert ensemble.edge_constraints[0].bw == 10_000_000
    assert set(ensemble.resources) == {"small"}


def test_gpu() -> None:
    ensemble = parse((EXAMPLES[0].parent / "gpu.yaml").read_text())
    request = ensemble.allocations["cuda-check"].resources
    assert request.gpus == (GpuRequest(vendor="nvidia", model="RTX", vram=8 * GiB),)
    assert request.cpu.clock_speed == 2_400_000_000
    assert request.disk.type == "ssd"
    node = ensemble.nodes["gpu-node"]
    assert node.location.accept[0].continent == "Europe"
    assert node.location.reject[0].country == "IS"
    assert ensemble.gpu_count() == 1


# NuNet's own style (dms/jobs samples and e2e files): environment as a list, dnsname-free,
# "null" quoted, ports with public/private/allocation, redundancy, subnet, resources template.
NUNET_STYLE = f"""
version: "V1"
resources:
  standard:
    name: standard
    cpu: {{cores: 2, architecture: x86_64, clock_speed: 2.4}}
    ram: {{size: 4, clock_speed: 3.2}}
    disk: {{size: 10, type: ssd}}
    gpus:
      - {{vendor: Nvidia, model: rtx3080, vram: 10}}
allocations:
  nginx1:
    type: service
    executor: docker
    resources: standard
    execution:
      type: docker
      image: ubuntu:22.04
      entrypoint: ["/bin/bash"]
      cmd: ["-c", "sleep 1000"]
      environment: ["DEBUG=1", "WORKER_ID=1"]
      working_directory: /
    healthcheck:
      type: command
      exec: ["echo", "hello"]
      response: {{type: string, value: hello}}
      interval: 1m
    dns_name: nginxdemo-alloc1
    failure_recovery: one_for_one
    keys: [{{type: ssh, file: keys/id.pub}}]
  sim:
    type: task
    executor: "null"
    resources: {{cpu: {{cores: 1}}, ram: {{size: 1}}, disk: {{size: 1}}}}
    execution: {{type: "null", run_for: 2s, exit_code: 3}}
nodes:
  node1:
    allocations: [nginx1]
    redundancy: 1
    peer: {DID}
    location:
      accept: [{{continent: North America, country: us, city: Mountain View, asn: 15169, isp: Google LLC}}]
  node2:
    allocations: [sim]
    ports:
      - private: 80
        public: 7224
        allocation: sim
    failure_recovery: restart
edge_constraints:
  - edges: [node1, node2]
    rtt: 0.25s
exclude_peers: []
escalation_strategy: redeploy
subnet:
  join: false
metadata: {{created: 2024-05-01, ready: true, size: 3}}
"""


def test_nunet_style() -> None:
    ensemble = parse(NUNET_STYLE)
    nginx = ensemble.allocations["nginx1"]
    assert nginx.resources.cpu.cores == 2.0
    assert nginx.resources.cpu.clock_speed == 2_400_000_000  # bare GHz
    assert nginx.resources.ram.size == 4 * GiB and nginx.resources.ram.clock_speed == 3_200_000_000
    assert nginx.resources.gpus == (GpuRequest("nvidia", "rtx3080", 10 * GiB),)
    execution = nginx.execution
    assert isinstance(execution, DockerExecution)
    assert execution.entrypoint == ("/bin/bash",)
    assert execution.environment == {"DEBUG": "1", "WORKER_ID": "1"}
    assert nginx.healthcheck is not None and nginx.healthcheck.interval == 60.0
    assert nginx.healthcheck.response is not None
    assert nginx.healthcheck.response.value == "hello"
    assert nginx.keys[0].type == "ssh" and nginx.keys[0].dest == ""
    assert ensemble.allocations["sim"].execution == NullExecution(run_for=2.0, exit_code=3)
    node1 = ensemble.nodes["node1"]
    assert node1.peer == DID and node1.redundancy == 1
    place = node1.location.accept[0]
    assert (place.continent, place.country, place.asn) == ("North America", "US", 15169)
    assert ensemble.nodes["node2"].failure_recovery == "restart"
    assert ensemble.edge_constraints[0].rtt == 250
    assert ensemble.escalation_strategy == "redeploy"
    assert ensemble.subnet is not None and not ensemble.subnet.join
    assert ensemble.metadata == {"created": "2024-05-01", "ready": "true", "size": "3"}
    assert ensemble.total().cpu_cores == 2 * 2 + 1  # node1 twice (redundancy 1)
    assert parse(dump(ensemble)) == ensemble


def test_merge_keys_and_anchors() -> None:
    text = """
allocations:
  a: &defaults
    type: task
    executor: process
    resources: {cpu: {cores: 1}, ram: {size: 1}, disk: {size: 1}}
    execution: {command: [/bin/true]}
  b:
    <<: *defaults
    type: service
    execution: {command: [/bin/sleep, 100]}
nodes:
  n: {allocations: [a, b]}
"""
    ensemble = parse(text)
    a, b = ensemble.allocations["a"], ensemble.allocations["b"]
    assert (a.type, b.type) == ("task", "service")  # the explicit key wins over the merged one
    assert b.executor == "process" and b.resources == a.resources
    assert b.execution == ProcessExecution(command=("/bin/sleep", "100"))


def test_environment_as_a_mapping_and_numbers_as_arguments() -> None:
    text = """
allocations:
  a:
    type: service
    executor: docker
    resources: {cpu: {cores: 1}, ram: {size: 1}, disk: {size: 1}}
    execution:
      image: redis:7
      cmd: [redis-server, --port, 6380]
      environment: {A: 1, B: x, C: true}
      user: "1000:1000"
      privileged: true
nodes:
  n: {allocations: [a]}
"""
    execution = parse(text).allocations["a"].execution
    assert isinstance(execution, DockerExecution)
    assert execution.cmd == ("redis-server", "--port", "6380")
    assert execution.environment == {"A": "1", "B": "x", "C": "true"}
    assert execution.user == "1000:1000" and execution.privileged
    assert execution.entrypoint is None


def test_null_executor_needs_no_execution() -> None:
    text = """
allocations:
  a: {type: task, executor: "null", resources: {cpu: {cores: 1}, ram: {size: 1}, disk: {size: 0}}}
nodes:
  n: {allocations: [a]}
"""
    allocation = parse(text).allocations["a"]
    assert allocation.execution == NullExecution()
    assert allocation.resources.disk.size == 0


def test_records_are_frozen() -> None:
    ensemble = parse((EXAMPLES[0].parent / "hello.yaml").read_text())
    with pytest.raises(AttributeError):
        ensemble.version = "V2"  # type: ignore[misc]


# --- units ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("1m0.5s", 60.5),
        (" 2h ", 7200.0),
        ("1400us", 0.001),  # kept to the millisecond
        (10, 10.0),
        (0.5, 0.5),
        ("12", 12.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "-5s", "5 s", "5x", "s", "", "1e3s", True, None, [1]])
def test_bad_durations(value: object) -> None:
    with pytest.raises(BadRequest):
        parse_duration(value)


def test_rtt_and_bandwidth() -> None:
    assert parse_rtt(50) == 50 and parse_rtt("50ms") == 50 and parse_rtt("0.2s") == 200
    assert parse_bandwidth(1000) == 1000
    assert parse_bandwidth("100Mbps") == 10**8
    assert parse_bandwidth("1 Gbit/s") == 10**9
    assert parse_bandwidth("2.5kbps") == 2500
    for bad in ("fast", "-1", "1 GiB", float("inf")):
        with pytest.raises(BadRequest):
            parse_bandwidth(bad)


@given(st.integers(0, 2**63 - 1))
def test_exact_bytes_is_exact(n: int) -> None:
    from dmsnode.resources import parse_bytes

    assert parse_bytes(exact_bytes(n)) == n


@given(st.integers(0, 2**63 - 1))
def test_exact_hz_is_exact(n: int) -> None:
    from dmsnode.resources import parse_hz

    assert parse_hz(exact_hz(n)) == n


@given(st.integers(0, 10**9).map(lambda ms: ms / 1000))
def test_exact_duration_is_exact(seconds: float) -> None:
    assert parse_duration(exact_duration(seconds)) == seconds


def test_exact_units_read_well() -> None:
    assert exact_bytes(8 * GiB) == "8GiB"
    assert exact_bytes(1536 * MiB) == "1536MiB"
    assert exact_bytes(1000) == "1000B"
    assert exact_hz(2_400_000_000) == "2.4GHz"
    assert exact_hz(800_000_000) == "800MHz"
    assert exact_duration(30.0) == "30s"
    assert exact_duration(0.25) == "0.25s"


# --- the round trip, on generated ensembles -------------------------------------------------------

_names = st.from_regex(r"[a-z][a-z0-9]{0,5}", fullmatch=True)
_sizes = st.one_of(
    st.integers(1, 64),
    st.sampled_from(["512MiB", "1GiB", "1.5GiB", "100MB", "2G", "3Ti"]),
    st.integers(1, 10**12).map(lambda n: f"{n}B"),
)
_durations = st.one_of(st.integers(1, 3600), st.sampled_from(["30s", "5m", "250ms", "1.5s", "1h"]))
_argv = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4)
_env = st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True), st.text(max_size=8))


def _resources(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cpu": {"cores": draw(st.one_of(st.integers(1, 64), st.floats(0.001, 64)))},
        "ram": {"size": draw(_sizes)},
        "disk": {"size": draw(_sizes)},
    }
    if draw(st.booleans()):
        data["cpu"]["clock_speed"] = draw(st.sampled_from([2.4, "800MHz", 3, "3.1GHz"]))
    if draw(st.booleans()):
        data["gpus"] = [
            {"vendor": draw(st.sampled_from(["nvidia", "AMD", "Intel"])), "vram": draw(_sizes)}
        ]
    return data


def _execution(draw: st.DrawFn, executor: str) -> dict[str, Any]:
    if executor == "docker":
        data: dict[str, Any] = {
            "type": "docker",
            "image": draw(st.sampled_from(["busybox", "a/b:1"])),
        }
        if draw(st.booleans()):
            data["cmd"] = draw(_argv)
        if draw(st.booleans()):
            data["entrypoint"] = draw(st.lists(st.text(min_size=1, max_size=5), max_size=2))
        if draw(st.booleans()):
            data["privileged"] = True
    elif executor == "process":
        data = {"type": "process", "command": draw(_argv)}
    else:
        return {"type": "null", "run_for": draw(_durations), "exit_code": draw(st.integers(0, 255))}
    if draw(st.booleans()):
        data["environment"] = draw(_env)
    if draw(st.booleans()):
        data["working_directory"] = "/work"
    return data


@st.composite
def ensembles(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ensemble file's data: allocations spread over nodes, dependencies only on
    earlier allocations of the same node (so no cycles), ports unique per node."""
    names = draw(st.lists(_names, min_size=1, max_size=5, unique=True))
    node_count = draw(st.integers(1, len(names)))
    placement = {name: f"n{draw(st.integers(0, node_count - 1))}" for name in names}
    allocations: dict[str, Any] = {}
    for i, name in enumerate(names):
        executor = draw(st.sampled_from(["docker", "process", "null"]))
        same_node = [n for n in names[:i] if placement[n] == placement[name]]
        allocation: dict[str, Any] = {
            "type": draw(st.sampled_from(["service", "task"])),
            "executor": executor,
            "resources": _resources(draw),
            "execution": _execution(draw, executor),
        }
        if same_node and draw(st.booleans()):
            allocation["depends_on"] = draw(st.lists(st.sampled_from(same_node), unique=True))
        if draw(st.booleans()):
            allocation["healthcheck"] = {
                "type": "command",
                "exec": draw(_argv),
                "interval": "1m",
                "timeout": draw(_durations.filter(lambda d: d in (1, "30s", "250ms", "1.5s"))),
            }
        allocation["failure_recovery"] = draw(
            st.sampled_from(["stay_down", "one_for_one", "one_for_all", "rest_for_one"])
        )
        allocations[name] = allocation
    nodes: dict[str, Any] = {}
    for name in sorted(set(placement.values())):
        members = [a for a in names if placement[a] == name]
        node: dict[str, Any] = {"allocations": members}
        publics = draw(st.lists(st.integers(1025, 65535), max_size=2, unique=True))
        node["ports"] = [
            {"public": p, "private": 80 + j, "allocation": members[0]}
            for j, p in enumerate([*publics, 0])
        ]
        node["redundancy"] = draw(st.integers(0, 2))
        node["failure_recovery"] = draw(st.sampled_from(["stay_down", "restart", "redeploy"]))
        if draw(st.booleans()):
            node["location"] = {"accept": [{"continent": "Europe", "country": "de"}]}
        nodes[name] = node
    data: dict[str, Any] = {"version": "V1", "allocations": allocations, "nodes": nodes}
    if len(nodes) > 1:
        data["edge_constraints"] = [{"edges": sorted(nodes)[:2], "rtt": draw(_durations)}]
    if draw(st.booleans()):
        data["metadata"] = draw(
            st.dictionaries(_names, st.one_of(st.text(max_size=5), st.integers()))
        )
    return data


@settings(max_examples=50, deadline=None, suppress_health_check=[Health.too_slow])
@given(ensembles())
def test_round_trip_is_stable(data: dict[str, Any]) -> None:
    ensemble = parse(yaml.safe_dump(data))
    text = dump(ensemble)
    again = parse(text)
    assert again == ensemble
    assert dump(again) == text
    assert parse_data(ensemble.to_dict()) == ensemble


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, (*prefix, i))
    return found


_junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.sampled_from([10**400, -(10**400), 2**63, 2**64]),
        st.floats(),
        st.text(max_size=8),
        st.sampled_from(["docker", "null", "service", "1GiB", "30s", "n0", "did:key:z6Mk"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[Health.too_slow])
@given(ensembles(), st.randoms(use_true_random=False), _junk, st.booleans())
def test_a_mutated_ensemble_is_valid_or_refused_cleanly(
    data: dict[str, Any], rnd: Any, junk: Any, delete: bool
) -> None:
    path = rnd.choice(_paths(data)[1:])
    parent: Any = data
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = junk
    text = yaml.safe_dump(data)
    errors = validate(text)
    if errors:
        assert all(e.message for e in errors)
        with pytest.raises(EnsembleInvalid) as raised:
            parse(text)
        assert list(raised.value.errors) == errors
    else:
        ensemble = parse(text)
        assert isinstance(ensemble, Ensemble)
        assert parse(dump(ensemble)) == ensemble
