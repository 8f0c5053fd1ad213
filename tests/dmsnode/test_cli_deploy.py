"""``dmsnode deploy`` and ``dmsnode deployments`` against a node running in this process (its
API on a real socket): the CLI runs in a worker thread, as a user whose key the node trusts."""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.pwhash.argon2id as argon2id
import pytest
import trio
from click.testing import CliRunner, Result

from dmsnode.cli import cli
from dmsnode.node import Node
from nuactor import Identity, Keystore

from .api.conftest import serving
from .api.test_deployment_routes import BROKEN, NULL_TASK, orchestrating_node

PASSPHRASE = "pw"


@dataclass
class Cli:
    """Runs ``dmsnode`` commands against one node, as its owner."""

    node: Node
    url: str
    user_dir: Path
    files: Path

    async def run(self, *args: str) -> Result:
        """``dmsnode --user-dir ... ARGS --api URL`` in a thread (the node runs meanwhile)."""
        argv = ["--user-dir", str(self.user_dir), *args, "--api", self.url]
        invoke = functools.partial(
            CliRunner().invoke, cli, argv, env={"DMS_PASSPHRASE": PASSPHRASE}
        )
        result: Result = await trio.to_thread.run_sync(invoke)
        assert "Traceback" not in result.output, result.output
        return result

    async def ok(self, *args: str) -> str:
        result = await self.run(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr)
        return result.stdout

    async def json(self, *args: str) -> Any:
        return json.loads(await self.ok(*args, "--json"))

    async def refused(self, *args: str) -> str:
        """A command that must fail (exit 1) with one line on stderr: that line."""
        result = await self.run(*args)
        assert result.exit_code == 1, (result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
        return lines[0]

    def file(self, name: str, text: str) -> str:
        path = self.files / name
        path.write_text(text)
        return str(path)


@contextlib.asynccontextmanager
async def cli_for(tmp_path: Path, *, provider: bool) -> AsyncIterator[Cli]:
    user = Identity.generate()
    keys = Keystore(
        tmp_path / "user" / "key", opslimit=argon2id.OPSLIMIT_MIN, memlimit=argon2id.MEMLIMIT_MIN
    )
    keys.create("user", PASSPHRASE, identity=user)
    (tmp_path / "node").mkdir()
    async with (
        orchestrating_node(user, tmp_path / "node", provider=provider) as node,
        serving(node) as url,
    ):
        yield Cli(node, url, tmp_path / "user", tmp_path)


@pytest.fixture
async def orchestrator(tmp_path: Path) -> AsyncIterator[Cli]:
    """A node that orchestrates but has no provider: nothing can be placed."""
    async with cli_for(tmp_path, provider=False) as running:
        yield running


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[Cli]:
    """A node that is its own provider, with the ``null`` executor."""
    async with cli_for(tmp_path, provider=True) as running:
        yield running


def deployment_id(text: str) -> str:
    found = re.search(r"deployment (d[0-9a-f]{16})", text)
    assert found is not None, text
    return found.group(1)


async def test_a_broken_file_is_checked_first_and_not_sent(orchestrator: Cli) -> None:
    broken = orchestrator.file("broken.yaml", BROKEN)
    result = await orchestrator.run("deploy", broken, "--wait")
    assert result.exit_code == 1
    problems = result.stdout.strip().splitlines()
    assert len(problems) == 2
    assert problems[0].startswith("allocations.job.resources.ram.size:")
    assert problems[1].startswith("nodes.n1.allocations[1]:")
    assert "2 errors; nothing was deployed" in result.stderr
    assert "fix the file" in result.stderr

    as_json = await orchestrator.run("deploy", broken, "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["valid"] is False
    assert len(report["errors"]) == 2
    assert orchestrator.node.orchestrator is not None
    assert orchestrator.node.orchestrator.deployments == {}


async def test_no_deployments_yet(orchestrator: Cli) -> None:
    assert await orchestrator.json("deployments", "list") == []
    assert "no deployments yet" in await orchestrator.ok("deployments", "list")
    assert "nothing to prune" in await orchestrator.ok("deployments", "prune")


async def test_an_unplaceable_deployment_waits_and_says_why(orchestrator: Cli) -> None:
    ensemble = orchestrator.file("task.yaml", NULL_TASK)
    result = await orchestrator.run("deploy", ensemble, "--wait", "--timeout", "2")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    id = deployment_id(result.stdout)
    assert "Preparing: created" in result.stdout
    assert "no placement yet" in result.stdout
    # A placement round's note, repeated each round, is printed once.
    assert result.stdout.count("no placement yet") == 1
    assert f"deployment {id} is still Preparing after 2 s: no placement yet" in result.stderr
    assert f"dmsnode deployments shutdown {id}" in result.stderr
    # The deployment goes on.
    orchestrator_ = orchestrator.node.orchestrator
    assert orchestrator_ is not None
    assert orchestrator_.get(id).state.value == "Preparing"

    table = await orchestrator.ok("deployments", "list")
    header, row = table.strip().splitlines()
    assert header.split() == ["ID", "STATE", "AGE", "NODES/ALLOCATIONS", "DESCRIPTION"]
    assert row.split()[:2] == [id, "Preparing"]
    assert row.split()[3:] == ["1/1", "one", "null", "task"]

    status = await orchestrator.ok("deployments", "status", id)
    assert f"deployment: {id}" in status
    assert "state:      Preparing" in status
    assert "reason:     no placement yet" in status
    assert "deadline:   in " in status
    assert "1 allocation: one null task" in status
    assert "no providers hold it yet" in status
    assert "created" in status.split("recent:")[1]
    as_json = await orchestrator.json("deployments", "status", id)
    assert as_json["state"] == "Preparing" and as_json["nodes"] == {}

    manifest = await orchestrator.ok("deployments", "manifest", id)
    assert f"deployment {id}: Preparing" in manifest
    assert "bids received: 0" in manifest

    # Only an ended deployment is deleted; the refusal says how to end it.
    refusal = await orchestrator.refused("deployments", "delete", id)
    assert f"is Preparing: shut it down first (dmsnode deployments shutdown {id} --wait)" in refusal
    done = await orchestrator.ok("deployments", "shutdown", id, "--wait", "--timeout", "10")
    assert "Completed: shut down on request" in done
    assert f"deployment {id} is over (Completed: shut down on request)" in done
    assert "nothing to prune" not in await orchestrator.ok("deployments", "prune")
    assert await orchestrator.json("deployments", "list") == []


async def test_deploy_without_wait_prints_the_id(orchestrator: Cli) -> None:
    ensemble = orchestrator.file("task.yaml", NULL_TASK)
    output = await orchestrator.ok("deploy", ensemble)
    id = deployment_id(output)
    assert "created: Preparing (1 node, 1 allocation)" in output
    assert f"dmsnode deployments status {id}" in output
    summary = await orchestrator.json("deploy", ensemble, "--deadline", "60")
    assert summary["deadline"] == pytest.approx(summary["created_at"] + 60)
    assert summary["state"] == "Preparing"
    shut = await orchestrator.json("deployments", "shutdown", id)
    assert shut["state"] in ("ShuttingDown", "Completed")


async def test_unknown_ids_are_refused_clearly(orchestrator: Cli) -> None:
    for command in ("status", "shutdown", "manifest", "logs", "delete"):
        line = await orchestrator.refused("deployments", command, "dnope")
        assert line == (
            "Error: no deployment 'dnope' on this orchestrator: "
            "'dmsnode deployments list' shows the deployments this node runs"
        ), command


async def test_timeout_without_wait_is_a_usage_error(orchestrator: Cli) -> None:
    ensemble = orchestrator.file("task.yaml", NULL_TASK)
    result = await orchestrator.run("deploy", ensemble, "--timeout", "5")
    assert result.exit_code == 2
    assert "--timeout limits how long --wait waits: add --wait" in result.stderr
    assert orchestrator.node.orchestrator is not None
    assert orchestrator.node.orchestrator.deployments == {}


async def test_a_null_task_deployed_and_waited_for(provider: Cli) -> None:
    ensemble = provider.file("task.yaml", NULL_TASK)
    result = await provider.run("deploy", ensemble, "--wait", "--timeout", "30")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    id = deployment_id(result.stdout)
    assert "Preparing: created" in result.stdout
    assert "bids received: 1" in result.stdout
    assert "Committing: committing on 1 provider(s)" in result.stdout
    assert re.search(rf"deployment {id} (is running|completed)", result.stdout)

    # A task-only deployment completes on its own.
    assert provider.node.orchestrator is not None
    with trio.fail_after(10):
        await provider.node.orchestrator.wait(id, ())
    status = await provider.json("deployments", "status", id)
    assert (status["state"], status["reason"]) == ("Completed", "every task completed")

    logs = await provider.ok("deployments", "logs", id)
    lines = logs.strip().splitlines()
    assert lines, logs
    assert all(re.match(r"n1/job  stdout  ", line) for line in lines), lines
    assert "null executor" in logs
    assert await provider.ok("deployments", "logs", id, "--allocation", "job") == logs
    assert await provider.ok("deployments", "logs", id, "--allocation", "n1/job") == logs
    as_json = await provider.json("deployments", "logs", id)
    assert list(as_json["logs"]) == ["n1/job"]
    refusal = await provider.refused("deployments", "logs", id, "--allocation", "web")
    assert "has no allocation 'web'" in refusal and "n1/job" in refusal

    manifest = await provider.ok("deployments", "manifest", id)
    assert "bids received: 1" in manifest
    assert "every task completed" in manifest

    # Shutting down an ended deployment says so; then it can be deleted.
    assert "already over (Completed)" in await provider.ok("deployments", "shutdown", id)
    assert await provider.ok("deployments", "delete", id) == f"deleted deployment {id}\n"
    assert await provider.json("deployments", "list") == []


async def test_deploy_wait_json_prints_the_final_status(provider: Cli) -> None:
    ensemble = provider.file("task.yaml", NULL_TASK)
    result = await provider.run("deploy", ensemble, "--wait", "--json")
    assert result.exit_code == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["state"] in ("Running", "Completed")
    assert {"nodes", "bids", "history"} <= set(status)


def with_execution(kind: str, execution: str) -> str:
    """NULL_TASK as an allocation of ``kind`` with the null ``execution`` given."""
    text = NULL_TASK.replace("type: task", f"type: {kind}")
    return text.replace(
        '    executor: "null"\n', f'    executor: "null"\n    execution: {execution}\n'
    )


async def test_a_failing_task_fails_the_wait(provider: Cli) -> None:
    ensemble = provider.file("fails.yaml", with_execution("task", '{type: "null", exit_code: 3}'))
    result = await provider.run("deploy", ensemble, "--wait", "--timeout", "30")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    id = deployment_id(result.stdout)
    error = result.stderr.strip().splitlines()
    assert len(error) == 1
    assert error[0].startswith(f"Error: deployment {id} failed: n1/job failed")
    assert "code 3" in error[0]
    assert "Failed:" in result.stdout


async def test_a_service_runs_until_shut_down(provider: Cli) -> None:
    ensemble = provider.file("service.yaml", with_execution("service", '{type: "null"}'))
    result = await provider.run("deploy", ensemble, "--wait", "--timeout", "30")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    id = deployment_id(result.stdout)
    assert "n1/job: running" in result.stdout
    assert "Running: every allocation started" in result.stdout
    assert f"deployment {id} is running" in result.stdout
    assert f"stop it:    dmsnode deployments shutdown {id}" in result.stdout

    status = await provider.ok("deployments", "status", id)
    assert "state:      Running" in status
    table = status.split("\n\n")[1].splitlines()
    assert table[0].split() == [
        "NODE",
        "PROVIDER",
        "STATE",
        "PORTS",
        "ALLOCATION",
        "ALLOCATION",
        "STATE",
    ]
    assert table[1].split() == ["n1", provider.node.did, "allocated", "-", "job", "running"]

    done = await provider.ok("deployments", "shutdown", id, "--wait", "--timeout", "30")
    assert "ShuttingDown: shutdown requested" in done
    assert f"deployment {id} is over (Completed: shut down on request)" in done
    status_json = await provider.json("deployments", "status", id)
    assert status_json["state"] == "Completed"
