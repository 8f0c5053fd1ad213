"""``dmsnode validate FILE [--json]`` through click's runner, and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmsnode.cli import cli
from dmsnode.ensemble import MAX_TEXT_BYTES

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ensembles"

BROKEN = """\
version: V1
allocations:
  web:
    type: service
    executor: docker
    resources:
      cpu: {cores: 1}
      ram: {size: 1 parsec}
      disk: {size: 1}
    execution: {image: nginx}
    depends_on: [db]
nodes:
  n1:
    allocations: [web]
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_valid(runner: CliRunner, path: Path) -> None:
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{path}: valid ensemble (V1)\n")


def test_summary(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["validate", str(EXAMPLES / "service-pair.yaml")])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[1] == "  2 allocations (2 services), 2 nodes; executors: process"
    assert lines[2] == "  asks for 1 core, 768 MiB RAM, 1 GiB disk, no GPU"
    gpu = runner.invoke(cli, ["validate", str(EXAMPLES / "gpu.yaml")])
    assert "asks for 2 cores at 2.4 GHz, 8 GiB RAM, 20 GiB disk, 1 GPU" in gpu.output


def test_summary_as_json(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["validate", str(EXAMPLES / "depends-on.yaml"), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["valid"] is True
    assert data["allocations"] == 3 and data["nodes"] == 1
    assert data["types"] == {"service": 1, "task": 2}
    assert data["executors"] == ["process"]
    assert data["resources"] == {
        "cpu_cores": 0.75,
        "cpu_hz": 0,
        "ram": 192 * 1024**2,
        "disk": 300 * 1024**2,
        "gpus": 0,
    }


def test_every_error_is_printed_and_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "allocations.web.resources.ram.size:8: not an amount of bytes: '1 parsec'"
        " (write a number and a unit: 8GiB, 512MiB or 1.5GB)",
        "allocations.web.depends_on[0]:11: no allocation named 'db'",
    ]
    assert result.stderr == f"{path}: 2 errors\n"


def test_errors_as_json(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = runner.invoke(cli, ["validate", str(path), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False and data["file"] == str(path)
    assert data["errors"] == [
        {
            "path": "allocations.web.resources.ram.size",
            "line": 8,
            "message": "not an amount of bytes: '1 parsec'"
            " (write a number and a unit: 8GiB, 512MiB or 1.5GB)",
        },
        {
            "path": "allocations.web.depends_on[0]",
            "line": 11,
            "message": "no allocation named 'db'",
        },
    ]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "(root): the file is empty"),
        (b"a: &x [1, *x]\n", "(root):1: an alias refers to a value that contains it"),
        (b"\xff\xfe", "(root): the file is not UTF-8 text"),
        (b" " * (MAX_TEXT_BYTES + 10), "(root): the file is too large"),
    ],
)
def test_unreadable_files_are_one_error(
    runner: CliRunner, tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "odd.yaml"
    path.write_bytes(content)
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout.startswith(fragment)
    assert result.stdout.count("\n") == 1


def test_bad_usage_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    assert runner.invoke(cli, ["validate", str(tmp_path / "missing.yaml")]).exit_code == 2
    assert runner.invoke(cli, ["validate", str(tmp_path)]).exit_code == 2
    assert runner.invoke(cli, ["validate"]).exit_code == 2


def test_as_a_real_command(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    done = subprocess.run(
        [sys.executable, "-m", "dmsnode", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "allocations.web.depends_on[0]:11: no allocation named 'db'" in done.stdout
    assert "Traceback" not in done.stderr
