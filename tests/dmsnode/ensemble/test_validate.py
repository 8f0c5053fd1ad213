"""Refusing broken ensembles: one broken file per rule, each error at its exact path (and line),
every error at once, hostile YAML refused cleanly, and any input whatsoever either read or
refused with EnsembleInvalid."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmsnode.ensemble import (
    MAX_TEXT_BYTES,
    EnsembleInvalid,
    SpecError,
    parse,
    parse_data,
    validate,
    validate_data,
)
from dmsnode.errors import DmsError

DID = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
SMALL = {"cpu": {"cores": 1}, "ram": {"size": 1}, "disk": {"size": 1}}


def small() -> dict[str, Any]:
    """A fresh copy (a shared one would be written as a YAML alias, and break together)."""
    return copy.deepcopy(SMALL)


def base() -> dict[str, Any]:
    """A valid ensemble that touches most rules; each case breaks one thing in it."""
    return copy.deepcopy(
        {
            "version": "V1",
            "resources": {"small": small()},
            "scripts": {"setup": "echo set up"},
            "allocations": {
                "web": {
                    "type": "service",
                    "executor": "docker",
                    "resources": "small",
                    "execution": {"type": "docker", "image": "nginx:1.27"},
                    "healthcheck": {"type": "http", "endpoint": "http://localhost/"},
                    "provision": ["setup"],
                },
                "db": {
                    "type": "service",
                    "executor": "process",
                    "resources": small(),
                    "execution": {"command": ["/usr/bin/db"]},
                },
                "job": {"type": "task", "executor": "null", "resources": "small"},
            },
            "nodes": {
                "n1": {
                    "allocations": ["web", "db"],
                    "ports": [{"public": 8080, "private": 80, "allocation": "web"}],
                },
                "n2": {"allocations": ["job"]},
            },
            "edge_constraints": [{"edges": ["n1", "n2"], "rtt": 50}],
        }
    )


def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set the value at a dotted path (``a.b.0.c``; digits index lists)."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = data
        for part in parents:
            target = target[part]
        target[last] = value

    return change


def drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part) if part.isdigit() else part]
        del target[last]

    return change


def both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        for one in changes:
            one(data)

    return change


def test_the_base_is_valid() -> None:
    assert validate(yaml.safe_dump(base())) == []


# (id, change, the one error's path, a part of its message)
# fmt: off
CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    # unknown keys, with hints
    ("root-typo", put("allocation", {}), "allocation", "did you mean 'allocations'?"),
    ("alias-hint", put("allocations.db.execution.env", ["A=1"]), "allocations.db.execution.env", "did you mean 'environment'?"),
    ("dnsname", put("allocations.web.dnsname", "w"), "allocations.web.dnsname", "did you mean 'dns_name'?"),
    ("no-hint", put("allocations.web.zzz", 1), "allocations.web.zzz", "known here: type, executor"),
    ("unsupported", put("supervisor", {"strategy": "OneForOne"}), "supervisor", "not supported"),
    ("docker-key-on-process", put("allocations.db.execution.image", "x"), "allocations.db.execution.image", "unknown key 'image'"),
    # the whole file
    ("version", put("version", "V2"), "version", "only version V1"),
    ("no-allocations", drop("allocations"), "allocations", "is missing"),
    ("empty-allocations", put("allocations", {}), "allocations", "cannot be empty"),
    ("metadata-nested", put("metadata", {"x": {"y": 1}}), "metadata.x", "text or numbers"),
    ("escalation", put("escalation_strategy", "panic"), "escalation_strategy", "redeploy, teardown"),
    ("subnet", put("subnet", {"join": "yes please"}), "subnet.join", "true or false"),
    # allocations
    ("name", put("allocations.bad_name", {"type": "task", "executor": "null", "resources": "small"}), "allocations.bad_name", "not a valid allocation name"),
    ("type", put("allocations.web.type", "daemon"), "allocations.web.type", "service, task"),
    ("type-missing", drop("allocations.web.type"), "allocations.web.type", "is missing"),
    ("executor", put("allocations.web.executor", "firecracker"), "allocations.web.executor", "not supported"),
    ("executor-unknown", put("allocations.job.executor", "wasm"), "allocations.job.executor", "docker, process, null"),
    ("executor-null", put("allocations.job.executor", None), "allocations.job.executor", 'executor: "null" (quoted)'),
    ("execution-type", put("allocations.web.execution.type", "process"), "allocations.web.execution.type", "must be the allocation's executor (docker)"),
    ("execution-missing", drop("allocations.db.execution"), "allocations.db.execution", "is missing"),
    ("image-missing", drop("allocations.web.execution.image"), "allocations.web.execution.image", "is missing"),
    ("image-bad", put("allocations.web.execution.image", "not an image"), "allocations.web.execution.image", "not a container image"),
    ("cmd-item", put("allocations.web.execution.cmd", ["echo", {"a": 1}]), "allocations.web.execution.cmd[1]", "must be text"),
    ("working-dir", put("allocations.web.execution.working_directory", "app"), "allocations.web.execution.working_directory", "absolute"),
    ("privileged", put("allocations.web.execution.privileged", "yes"), "allocations.web.execution.privileged", "true or false"),
    ("command-text", put("allocations.db.execution.command", "echo hi"), "allocations.db.execution.command", "must be a list of arguments"),
    ("command-empty", put("allocations.db.execution.command", []), "allocations.db.execution.command", "cannot be empty"),
    ("env-item", put("allocations.db.execution.environment", ["NOEQUALS"]), "allocations.db.execution.environment[0]", "KEY=value"),
    ("env-name", put("allocations.db.execution.environment", {"1BAD": "x"}), "allocations.db.execution.environment.1BAD", "not a variable name"),
    ("env-twice", put("allocations.db.execution.environment", ["A=1", "A=2"]), "allocations.db.execution.environment[1]", "set twice"),
    ("run-for", put("allocations.job.execution", {"run_for": "a while"}), "allocations.job.execution.run_for", "not a duration"),
    ("exit-code", put("allocations.job.execution", {"exit_code": 300}), "allocations.job.execution.exit_code", "from 0 to 255"),
    ("dns-name", put("allocations.web.dns_name", "not_a_name"), "allocations.web.dns_name", "not a DNS name"),
    ("dns-twice", put("allocations.db.dns_name", "web"), "allocations.db.dns_name", "already allocation 'web'"),
    ("recovery", put("allocations.web.failure_recovery", "restart"), "allocations.web.failure_recovery", "stay_down, one_for_one"),
    # resources
    ("resources-missing", drop("allocations.db.resources"), "allocations.db.resources", "is missing"),
    ("cores-zero", put("allocations.db.resources", {**SMALL, "cpu": {"cores": 0}}), "allocations.db.resources.cpu.cores", "more than 0"),
    ("cores-huge", put("allocations.db.resources", {**SMALL, "cpu": {"cores": 10**400}}), "allocations.db.resources.cpu.cores", "at most 1000000"),
    ("cores-inf", put("allocations.db.resources", {**SMALL, "cpu": {"cores": float("inf")}}), "allocations.db.resources.cpu.cores", "at most 1000000, got inf"),
    ("cores-text", put("allocations.db.resources", {**SMALL, "cpu": {"cores": "two"}}), "allocations.db.resources.cpu.cores", "number of cores"),
    ("cpu-missing", put("allocations.db.resources", {"ram": {"size": 1}, "disk": {"size": 1}}), "allocations.db.resources.cpu", "is missing"),
    ("clock", put("allocations.db.resources", {**SMALL, "cpu": {"cores": 1, "clock_speed": "fast"}}), "allocations.db.resources.cpu.clock_speed", "not a clock speed"),
    ("ram-unit", put("allocations.db.resources", {**SMALL, "ram": {"size": "12 parsecs"}}), "allocations.db.resources.ram.size", "not an amount of bytes"),
    ("ram-zero", put("allocations.db.resources", {**SMALL, "ram": {"size": 0}}), "allocations.db.resources.ram.size", "more than 0"),
    ("ram-negative", put("allocations.db.resources", {**SMALL, "ram": {"size": "-1GiB"}}), "allocations.db.resources.ram.size", "negative"),
    ("ram-not-a-map", put("allocations.db.resources", {**SMALL, "ram": "4GiB"}), "allocations.db.resources.ram", "must be a mapping"),
    ("disk-size", put("allocations.db.resources", {**SMALL, "disk": {}}), "allocations.db.resources.disk.size", "is missing"),
    ("gpu-vendor", put("allocations.db.resources", {**SMALL, "gpus": [{"vendor": "matrox"}]}), "allocations.db.resources.gpus[0].vendor", "unknown GPU vendor 'matrox' (known: nvidia, amd, intel)"),
    ("gpu-vram", put("allocations.db.resources", {**SMALL, "gpus": [{"vram": "lots"}]}), "allocations.db.resources.gpus[0].vram", "not an amount"),
    ("gpus-not-list", put("allocations.db.resources", {**SMALL, "gpus": {"vendor": "nvidia"}}), "allocations.db.resources.gpus", "must be a list"),
    # templates
    ("template-unknown", put("allocations.web.resources", "big"), "allocations.web.resources", "no resource template named 'big' (templates: small)"),
    ("template-typo", put("allocations.web.resources", "smal"), "allocations.web.resources", "did you mean 'small'?"),
    ("template-merge-unknown", put("allocations.web.resources", {"name": "big", "ram": {"size": 2}}), "allocations.web.resources.name", "no resource template named 'big'"),
    ("template-name-list", put("allocations.web.resources", {"name": ["small"]}), "allocations.web.resources", "a template is named by text"),
    ("template-broken", put("resources.small.cpu", {"cores": -1}), "resources.small.cpu.cores", "more than 0"),
    ("template-name", put("resources.small.name", "other"), "resources.small.name", "must be the template's key"),
    # dependencies
    ("depends-unknown", put("allocations.web.depends_on", ["dbb"]), "allocations.web.depends_on[0]", "no allocation named 'dbb' (did you mean 'db'?)"),
    ("depends-self", put("allocations.web.depends_on", ["web"]), "allocations.web.depends_on[0]", "cannot depend on itself"),
    ("depends-other-node", put("allocations.web.depends_on", ["job"]), "allocations.web.depends_on[0]", "'job' is on node 'n2' and 'web' on node 'n1'"),
    ("depends-twice", put("allocations.web.depends_on", ["db", "db"]), "allocations.web.depends_on[1]", "listed twice"),
    ("depends-not-list", put("allocations.web.depends_on", "db"), "allocations.web.depends_on", "must be a list"),
    # placement
    ("unplaced", put("allocations.extra", {"type": "task", "executor": "null", "resources": "small"}), "allocations.extra", "not placed on any node"),
    ("placed-twice", put("nodes.n2.allocations", ["job", "web"]), "nodes.n2.allocations[1]", "already placed on node 'n1'"),
    ("node-unknown-allocation", put("nodes.n2.allocations", ["job", "ghost"]), "nodes.n2.allocations[1]", "no allocation named 'ghost'"),
    ("node-no-allocations", drop("nodes.n2.allocations"), "nodes.n2.allocations", "is missing"),
    ("node-name", put("nodes.n2", None), "nodes.n2", "must be a node"),
    ("nodes-missing", drop("nodes"), "nodes", "is missing"),
    # ports
    ("port-low", put("nodes.n1.ports.0.public", 80), "nodes.n1.ports[0].public", "from 1025 to 65535"),
    ("port-private", put("nodes.n1.ports.0.private", 70000), "nodes.n1.ports[0].private", "from 1 to 65535"),
    ("port-private-missing", drop("nodes.n1.ports.0.private"), "nodes.n1.ports[0].private", "is missing"),
    ("port-allocation-missing", drop("nodes.n1.ports.0.allocation"), "nodes.n1.ports[0].allocation", "is missing"),
    ("port-other-node", put("nodes.n1.ports.0.allocation", "job"), "nodes.n1.ports[0].allocation", "'job' is not on node 'n1'"),
    ("port-public-twice", put("nodes.n1.ports", [{"public": 8080, "private": 80, "allocation": "web"}, {"public": 8080, "private": 81, "allocation": "db"}]), "nodes.n1.ports[1].public", "already asked by ports[0]"),
    ("port-private-twice", put("nodes.n1.ports", [{"public": 8080, "private": 80, "allocation": "web"}, {"private": 80, "allocation": "web"}]), "nodes.n1.ports[1].private", "port 80 of 'web' is already mapped"),
    # location, peers, redundancy
    ("continent", put("nodes.n1.location", {"accept": [{"continent": "Atlantis"}]}), "nodes.n1.location.accept[0].continent", "unknown continent"),
    ("continent-missing", put("nodes.n1.location", {"reject": [{"country": "DE"}]}), "nodes.n1.location.reject[0].continent", "is missing"),
    ("country", put("nodes.n1.location", {"accept": [{"continent": "Europe", "country": "Germany"}]}), "nodes.n1.location.accept[0].country", "two-letter"),
    ("city", put("nodes.n1.location", {"accept": [{"continent": "Europe", "city": "Berlin"}]}), "nodes.n1.location.accept[0].city", "needs a country"),
    ("region", put("nodes.n1.location", {"accept": [{"continent": "Europe", "region": "x"}]}), "nodes.n1.location.accept[0].region", "did you mean 'continent'?"),
    ("peer", put("nodes.n1.peer", "12D3KooWJwNf7KGNwGxgkGXuYvfS5ZKrHhXH2qwvVDiGFsGV5xqz"), "nodes.n1.peer", "not a provider's DID"),
    ("redundancy", put("nodes.n1.redundancy", -1), "nodes.n1.redundancy", "from 0 to 100"),
    ("node-recovery", put("nodes.n1.failure_recovery", "one_for_one"), "nodes.n1.failure_recovery", "stay_down, restart, redeploy"),
    ("exclude-bad", put("exclude_peers", ["nobody"]), "exclude_peers[0]", "not a provider's DID"),
    ("exclude-twice", put("exclude_peers", [DID, DID]), "exclude_peers[1]", "already listed"),
    ("pinned-excluded", both(put("nodes.n1.peer", DID), put("exclude_peers", [DID])), "nodes.n1.peer", "excludes"),
    # edges
    ("edge-node", put("edge_constraints.0.edges", ["n1", "n3"]), "edge_constraints[0].edges", "no node named 'n3'"),
    ("edge-same", put("edge_constraints.0.edges", ["n1", "n1"]), "edge_constraints[0].edges", "two different nodes"),
    ("edge-three", put("edge_constraints.0.edges", ["n1", "n2", "n3"]), "edge_constraints[0].edges", "must name two nodes"),
    ("edge-twice", put("edge_constraints", [{"edges": ["n1", "n2"], "rtt": 5}, {"edges": ["n2", "n1"], "bw": 10}]), "edge_constraints[1].edges", "already constrained by edge_constraints[0]"),
    ("edge-empty", put("edge_constraints.0", {"edges": ["n1", "n2"]}), "edge_constraints[0]", "asks for nothing"),
    ("edge-rtt", put("edge_constraints.0.rtt", "fast"), "edge_constraints[0].rtt", "not a duration"),
    ("edge-bw", put("edge_constraints.0.bw", "a lot"), "edge_constraints[0].bw", "not a bandwidth"),
    # scripts, health checks, keys
    ("script", put("allocations.web.provision", ["setpu"]), "allocations.web.provision[0]", "no script named 'setpu' (did you mean 'setup'?)"),
    ("script-empty", put("scripts.setup", ""), "scripts.setup", "a script is its text"),
    ("health-type", put("allocations.web.healthcheck", {"type": "tcp"}), "allocations.web.healthcheck.type", "command, http"),
    ("health-interval", put("allocations.web.healthcheck.interval", "soon"), "allocations.web.healthcheck.interval", "not a duration: 'soon'"),
    ("health-zero", put("allocations.web.healthcheck.interval", 0), "allocations.web.healthcheck.interval", "longer than 0"),
    ("health-timeout", put("allocations.web.healthcheck.timeout", "1m"), "allocations.web.healthcheck.timeout", "not be longer than the interval"),
    ("health-endpoint", drop("allocations.web.healthcheck.endpoint"), "allocations.web.healthcheck.endpoint", "is missing"),
    ("health-url", put("allocations.web.healthcheck.endpoint", "localhost/health"), "allocations.web.healthcheck.endpoint", "http:// or https:// URL"),
    ("health-exec", put("allocations.web.healthcheck", {"type": "command"}), "allocations.web.healthcheck.exec", "is missing"),
    ("health-exec-on-http", put("allocations.web.healthcheck.exec", ["true"]), "allocations.web.healthcheck.exec", "is for command health checks"),
    ("health-retries", put("allocations.web.healthcheck.retries", 0), "allocations.web.healthcheck.retries", "from 1 to 100"),
    ("health-response", put("allocations.web.healthcheck.response", {"type": "regex", "value": "x"}), "allocations.web.healthcheck.response.type", "must be one of string"),
    ("key-type", put("allocations.web.keys", [{"type": "pgp", "file": "k"}]), "allocations.web.keys[0].type", "ssh, gpg"),
    ("key-dest", put("allocations.web.keys", [{"type": "gpg", "file": "k"}]), "allocations.web.keys[0].dest", "is missing"),
    ("key-file", put("allocations.web.keys", [{"type": "ssh"}]), "allocations.web.keys[0].file", "is missing"),
]
# fmt: on


@pytest.mark.parametrize(
    ("change", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_one_broken_rule_one_error_at_its_path(
    change: Callable[[dict[str, Any]], None], path: str, fragment: str
) -> None:
    data = base()
    change(data)
    text = yaml.safe_dump(data, sort_keys=False)
    errors = validate(text)
    assert [e.path for e in errors] == [path], errors
    assert fragment in errors[0].message
    assert errors[0].line is not None
    with pytest.raises(EnsembleInvalid) as raised:
        parse(text)
    assert list(raised.value.errors) == errors
    assert isinstance(raised.value, DmsError)
    # The same data, already loaded (JSON, the store): the same error, without a line.
    assert [(e.path, e.message) for e in validate_data(data)] == [(path, errors[0].message)]


def test_a_cycle_is_named() -> None:
    data = base()
    data["allocations"]["web"]["depends_on"] = ["db"]
    data["allocations"]["db"]["depends_on"] = ["web"]
    errors = validate(yaml.safe_dump(data))
    assert len(errors) == 1
    assert errors[0].message in (
        "depends_on makes a cycle: web -> db -> web",
        "depends_on makes a cycle: db -> web -> db",
    )


def test_a_longer_cycle_is_reported_once() -> None:
    data = base()
    data["allocations"]["job"]["depends_on"] = []
    names = ["a", "b", "c", "d"]
    for i, name in enumerate(names):
        data["allocations"][name] = {
            "type": "task",
            "executor": "null",
            "resources": "small",
            "depends_on": [names[(i + 1) % len(names)]],
        }
    data["nodes"]["n2"]["allocations"] += names
    errors = validate(yaml.safe_dump(data))
    assert [e.message for e in errors] == ["depends_on makes a cycle: a -> b -> c -> d -> a"]
    assert errors[0].path == "allocations.d.depends_on[0]"


TEXT_WITH_LINES = """\
version: V1
allocations:
  web:
    type: service
    executor: docker
    resources:
      cpu: {cores: 1}
      ram:
        size: 12 parsecs
      disk: {size: 1}
    execution:
      image: nginx
      env: [A=1]
nodes:
  n1:
    allocations: [web, ghost]
    ports:
      - public: 80
        private: 80
        allocation: web
"""


def test_errors_name_their_lines() -> None:
    errors = validate(TEXT_WITH_LINES)
    assert [str(e) for e in errors] == [
        "allocations.web.resources.ram.size:9: not an amount of bytes: '12 parsecs'"
        " (write a number and a unit: 8GiB, 512MiB or 1.5GB)",
        "allocations.web.execution.env:13: unknown key 'env' (did you mean 'environment'?)",
        "nodes.n1.allocations[1]:16: no allocation named 'ghost'",
        "nodes.n1.ports[0].public:18: must be 0 (the provider picks one) or from 1025 to 65535,"
        " got 80",
    ]


def test_a_missing_key_has_the_line_of_its_parent() -> None:
    errors = validate(TEXT_WITH_LINES.replace("      disk: {size: 1}\n", ""))
    assert (
        SpecError(
            "allocations.web.resources.disk",
            "is missing: the disk: size (e.g. disk: {size: 1GiB})",
            6,
        )
        in errors
    )


def test_every_error_at_once() -> None:
    data = base()
    data["version"] = "V9"
    data["allocations"]["web"]["type"] = "daemon"
    data["allocations"]["db"]["resources"]["ram"] = {"size": "huge"}
    data["allocations"]["job"]["depends_on"] = ["nobody"]
    data["allocations"]["extra"] = {"type": "task", "executor": "null", "resources": "small"}
    data["nodes"]["n1"]["ports"][0]["public"] = 22
    data["nodes"]["n2"]["location"] = {"accept": [{"continent": "Mars"}]}
    data["edge_constraints"][0]["edges"] = ["n1", "n9"]
    data["exclude_peers"] = ["x"]
    errors = validate(yaml.safe_dump(data, sort_keys=False))
    assert {e.path for e in errors} == {
        "version",
        "allocations.web.type",
        "allocations.db.resources.ram.size",
        "allocations.job.depends_on[0]",
        "allocations.extra",
        "nodes.n1.ports[0].public",
        "nodes.n2.location.accept[0].continent",
        "edge_constraints[0].edges",
        "exclude_peers[0]",
    }
    lines = [e.line for e in errors]
    assert None not in lines and lines == sorted(lines)  # in the order of the file
    with pytest.raises(EnsembleInvalid) as raised:
        parse(yaml.safe_dump(data))
    assert "invalid ensemble (9 errors): " in str(raised.value)


def test_a_wrong_section_does_not_cascade() -> None:
    """An allocation that is not a mapping is one error, not also 'not placed', and its
    name stays known to the nodes that list it."""
    data = base()
    data["allocations"]["db"] = ["not", "a", "mapping"]
    assert [e.path for e in validate(yaml.safe_dump(data))] == ["allocations.db"]
    data = base()
    data["nodes"]["n1"]["allocations"] = "web, db"
    assert [e.path for e in validate(yaml.safe_dump(data))] == ["nodes.n1.allocations"]


def test_a_flood_of_errors_is_capped() -> None:
    data = base()
    for i in range(300):
        data["allocations"][f"x{i}"] = {"type": "nonsense"}
    errors = validate(yaml.safe_dump(data))
    assert len(errors) == 201
    assert errors[-1].path == "(root)" and "more errors not shown" in errors[-1].message


# --- hostile or odd YAML --------------------------------------------------------------------------


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (_bomb(9), "expands to more than 100000 values"),
        ("a: &x [1, *x]\n", "an alias refers to a value that contains it"),
        ("a: " + "[" * 200 + "]" * 200 + "\n", "nested more than 64 levels"),
        ("a: " + "[" * 5000, "nested more than 64 levels"),
        ("allocations: {}\n---\nnodes: {}\n", "expected a single document"),
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("a: [1, 2\n", "not valid YAML"),
        ("a: *nowhere\n", "found undefined alias"),
        ("a: \x07\n", "not valid YAML"),
        ("x" * (MAX_TEXT_BYTES + 1), "the file is too large"),
    ],
    ids=[
        "alias-bomb",
        "recursive-alias",
        "deep",
        "very-deep",
        "two-documents",
        "empty",
        "comment",
        "syntax",
        "undefined-alias",
        "control-character",
        "too-large",
    ],
)
def test_hostile_yaml_is_refused_cleanly(text: str, fragment: str) -> None:
    errors = validate(text)
    assert len(errors) == 1 and errors[0].path == "(root)"
    assert fragment in errors[0].message
    with pytest.raises(EnsembleInvalid):
        parse(text)


def test_bytes_are_read_as_utf8() -> None:
    assert validate(yaml.safe_dump(base()).encode()) == []
    errors = validate(b"version: \xff\n")
    assert errors == [SpecError("(root)", "the file is not UTF-8 text (byte 9)")]
    assert "too large" in validate(b" " * (MAX_TEXT_BYTES + 1))[0].message


@pytest.mark.parametrize(
    ("text", "path", "fragment"),
    [
        ("- allocations\n- nodes\n", "(root)", "must be a mapping with 'allocations' and 'nodes'"),
        ("just text\n", "(root)", "got the text 'just text'"),
        ("42\n", "(root)", "got the number 42"),
        ("!!python/object:os.system {}\n", "(root)", "the tag !!python/object:os.system"),
        ("version: !!binary aGk=\n", "version", "the tag !!binary is not allowed"),
        ("metadata: !!set {a, b}\n", "metadata", "the tag !!set is not allowed"),
        ("metadata: !custom 1\n", "metadata", "the tag !custom is not allowed"),
        ("version: V1\nversion: V1\n", "version", "given twice (first on line 1)"),
        ("1: x\n", "1", "a key must be text; quote it: '1'"),
        ("yes: x\n", "yes", "YAML reads it as True"),
        ("? [a, b]\n: x\n", "(root)", "a key must be a plain name"),
        ("metadata: {big: 1" + "0" * 5000 + "}\n", "metadata.big", "cannot read the value"),
    ],
)
def test_odd_yaml_is_named(text: str, path: str, fragment: str) -> None:
    errors = validate(text)
    assert any(e.path == path and fragment in e.message for e in errors), errors


def test_parse_data_refuses_non_mappings() -> None:
    with pytest.raises(EnsembleInvalid) as raised:
        parse_data(["not", "an", "ensemble"])
    assert raised.value.errors[0].path == "(root)"
    assert raised.value.errors[0].line is None


# --- anything at all ------------------------------------------------------------------------------

_VOCABULARY = [
    "version", "allocations", "nodes", "type", "executor", "resources", "execution", "cpu",
    "ram", "disk", "size", "cores", "gpus", "vendor", "vram", "image", "command", "cmd",
    "healthcheck", "exec", "endpoint", "interval", "timeout", "depends_on", "ports", "public",
    "private", "allocation", "location", "accept", "continent", "country", "city", "peer",
    "redundancy", "edge_constraints", "edges", "rtt", "bw", "metadata", "scripts", "provision",
    "keys", "name", "environment", "run_for", "web", "n1", "<<",
]  # fmt: skip
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64]),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(
        [*_VOCABULARY, "docker", "process", "null", "service", "task", "1GiB", "30s", "nvidia"]
    ),
)
_documents = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(_VOCABULARY), st.text(max_size=5)), inner, max_size=5
        ),
    ),
    max_leaves=30,
)


def _refused_or_read(text: str | bytes) -> None:
    errors = validate(text)
    if not errors:
        parse(text)
        return
    assert all(isinstance(e, SpecError) and e.path and e.message for e in errors)
    with pytest.raises(EnsembleInvalid) as raised:
        parse(text)
    assert list(raised.value.errors) == errors


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_read_or_refused(text: str) -> None:
    _refused_or_read(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_read_or_refused(data: bytes) -> None:
    _refused_or_read(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_any_yaml_document_is_read_or_refused(document: Any) -> None:
    _refused_or_read(yaml.safe_dump(document))
    if validate_data(document):
        with pytest.raises(EnsembleInvalid):
            parse_data(document)
    else:
        parse_data(document)


_tokens = st.sampled_from(
    ["&a ", "*a", "<<: ", "!!str ", "!x ", "? ", "- ", ": ", "{", "}", "[", "]", ", ", "\n",
     "  ", "allocations", "nodes", "web", "'q'", '"\\x85"', "# c", "---", "|", ">"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_tokens, max_size=40).map("".join))
def test_yaml_like_token_soup_is_read_or_refused(text: str) -> None:
    _refused_or_read(text)
