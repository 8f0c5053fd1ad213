"""``/api/v1/deployments``: the orchestrator's operator behaviours over plain HTTP, on a real
node (store, orchestrator, and for the full run a provider with the ``null`` executor) and a
real socket."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import yaml

from dmsnode.executors import Availability, NullExecutor
from dmsnode.node import Node
from dmsnode.resources import Ledger, Resources
from dmsnode.store import open_store
from nuactor import Identity, TrustContext

from .conftest import WAIT, Client, Reply, node_config, read_response, running_node, serving

DEPLOYMENTS = "/api/v1/deployments"
SHARE = Resources(cpu_cores=2, ram=2 << 30, disk=8 << 30)

#: One task for the ``null`` executor, on one node: it completes at once.
NULL_TASK = """\
version: "V1"
metadata:
  description: one null task
allocations:
  job:
    type: task
    executor: "null"
    resources:
      cpu: {cores: 0.5}
      ram: {size: 128MiB}
      disk: {size: 1}
nodes:
  n1:
    allocations: [job]
"""

#: Two mistakes: a RAM size that is not one, and a node listing an unknown allocation.
BROKEN = NULL_TASK.replace("128MiB", "lots").replace("[job]", "[job, ghost]")


@contextlib.asynccontextmanager
async def orchestrating_node(
    user: Identity, directory: Path, *, provider: bool = False, unsigned_writes: bool = True
) -> AsyncIterator[Node]:
    """A running node that orchestrates (it has a store), owned by ``user`` (its trust root).
    With ``provider``, it is also an onboarded provider whose only executor is ``null``, so it
    bids on, and runs, what it orchestrates. The write routes are on (``rest.unsigned_writes``)
    unless ``unsigned_writes`` is false."""
    identity = Identity.generate()
    trust = TrustContext(identity)
    trust.add_root(user.did)
    async with open_store(directory / "node.db") as store, contextlib.AsyncExitStack() as stack:
        ledger = None
        if provider:
            ledger = await Ledger.open(store)
            await ledger.onboard(SHARE, machine=SHARE + SHARE, disk_free=SHARE.disk * 2)
        config = node_config()
        config.set("rest.unsigned_writes", unsigned_writes)
        node = Node(config, identity, trust, store=store, ledger=ledger, plugins=False)
        if provider:
            node.executors = {"null": await stack.enter_async_context(NullExecutor())}
            node.executor_availability = {"null": Availability(True)}
        async with node.running():
            yield node


async def send(
    url: str, method: str, path: str, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()
) -> Reply:
    """One request with exactly these headers (the conftest client always says JSON)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    fields = [("Host", host), ("Connection", "close"), ("Content-Length", str(len(body)))]
    connection = h11.Connection(h11.CLIENT)
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            request = h11.Request(method=method, target=path, headers=[*fields, *headers])
            await stream.send_all(connection.send(request))
            if body:
                await stream.send_all(connection.send(h11.Data(data=body)))
            await stream.send_all(connection.send(h11.EndOfMessage()))
            return await read_response(connection, stream)


async def wait_status(
    client: Client, id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll the deployment's status until ``done`` says so."""
    with trio.fail_after(WAIT):
        while True:
            reply = await client.get(f"{DEPLOYMENTS}/{id}")
            assert reply.status == 200, reply.body
            status: dict[str, Any] = reply.json()
            if done(status):
                return status
            await trio.sleep(0.05)


async def wait_state(client: Client, id: str, *states: str) -> dict[str, Any]:
    return await wait_status(client, id, lambda status: status["state"] in states)


@pytest.fixture
async def orchestrator(tmp_path: Path) -> AsyncIterator[Client]:
    """An orchestrating node with no provider to place anything on."""
    async with orchestrating_node(Identity.generate(), tmp_path) as node, serving(node) as url:
        yield Client(url)


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[Client]:
    """An orchestrating node that is its own provider (the ``null`` executor)."""
    user = Identity.generate()
    async with orchestrating_node(user, tmp_path, provider=True) as node, serving(node) as url:
        yield Client(url)


async def test_no_deployments_yet(orchestrator: Client) -> None:
    reply = await orchestrator.get(DEPLOYMENTS)
    assert reply.status == 200
    assert reply.json() == []


async def test_deploy_from_json_and_follow_it(orchestrator: Client) -> None:
    reply = await orchestrator.post(DEPLOYMENTS, {"ensemble": NULL_TASK, "timeout": 120})
    assert reply.status == 201, reply.body
    summary = reply.json()
    id = summary["id"]
    assert reply.headers["location"] == f"{DEPLOYMENTS}/{id}"
    assert summary["state"] == "Preparing"
    assert summary["description"] == "one null task"
    assert (summary["nodes"], summary["allocations"]) == (1, 1)
    assert summary["deadline"] == pytest.approx(summary["created_at"] + 120)

    listed = (await orchestrator.get(DEPLOYMENTS)).json()
    assert [d["id"] for d in listed] == [id]

    # Nobody bids (the node is no provider and has no peers): it stays Preparing, saying why.
    status = await wait_status(orchestrator, id, lambda status: bool(status["reason"]))
    assert status["state"] == "Preparing"
    assert "no placement yet" in status["reason"]
    assert status["nodes"] == {}
    assert status["history"][0]["text"] == "created"

    manifest = await orchestrator.get(f"{DEPLOYMENTS}/{id}/manifest")
    assert manifest.status == 200
    assert manifest.json()["id"] == id
    assert manifest.json()["bids"] == 0
    assert "rejections" in manifest.json()

    logs = await orchestrator.get(f"{DEPLOYMENTS}/{id}/logs")
    assert logs.status == 200
    assert logs.json() == {"id": id, "state": "Preparing", "logs": {}}


async def test_deploy_from_a_map(orchestrator: Client) -> None:
    reply = await orchestrator.post(DEPLOYMENTS, {"ensemble": yaml.safe_load(NULL_TASK)})
    assert reply.status == 201, reply.body
    assert reply.json()["description"] == "one null task"


@pytest.mark.parametrize("content_type", ["application/yaml", "text/yaml; charset=utf-8"])
async def test_deploy_raw_yaml(orchestrator: Client, content_type: str) -> None:
    url = f"http://{orchestrator.host}:{orchestrator.port}"
    reply = await send(
        url,
        "POST",
        f"{DEPLOYMENTS}?timeout=90",
        NULL_TASK.encode(),
        [("Content-Type", content_type)],
    )
    assert reply.status == 201, reply.body
    summary = reply.json()
    assert summary["deadline"] == pytest.approx(summary["created_at"] + 90)


async def test_an_invalid_ensemble_lists_every_error(orchestrator: Client) -> None:
    url = f"http://{orchestrator.host}:{orchestrator.port}"
    for reply in (
        await orchestrator.post(DEPLOYMENTS, {"ensemble": BROKEN}),
        await send(url, "POST", DEPLOYMENTS, BROKEN.encode(), [("Content-Type", "text/yaml")]),
    ):
        assert reply.status == 400
        error = reply.json()
        assert error["error"] == "BadRequest"
        assert error["detail"].startswith("invalid ensemble (2 errors)")
        paths = {e["path"] for e in error["errors"]}
        assert paths == {"allocations.job.resources.ram.size", "nodes.n1.allocations[1]"}
        assert all(isinstance(e["line"], int) and e["message"] for e in error["errors"])
    assert (await orchestrator.get(DEPLOYMENTS)).json() == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "'ensemble' is missing"),
        ({"ensemble": NULL_TASK, "deadline": 5}, "unknown field 'deadline'"),
        ({"ensemble": [1]}, "not a array"),
        ({"ensemble": NULL_TASK, "timeout": -1}, "'timeout' must be a positive number"),
        ({"ensemble": NULL_TASK, "timeout": True}, "'timeout' must be a positive number"),
        ([NULL_TASK], "must be a JSON object, not a array"),
    ],
)
async def test_bad_requests_say_what_to_send(orchestrator: Client, body: Any, detail: str) -> None:
    reply = await orchestrator.post(DEPLOYMENTS, body)
    assert reply.status == 400
    assert reply.json()["error"] == "BadRequest"
    assert detail in reply.json()["detail"]


async def test_other_content_types_are_refused(orchestrator: Client) -> None:
    url = f"http://{orchestrator.host}:{orchestrator.port}"
    for headers in ([("Content-Type", "text/plain")], []):
        reply = await send(url, "POST", DEPLOYMENTS, NULL_TASK.encode(), headers)
        assert reply.status == 415
        error = reply.json()
        assert error["error"] == "UnsupportedMediaType"
        assert "application/json" in error["detail"] and "application/yaml" in error["detail"]
    bad_query = await send(
        url,
        "POST",
        f"{DEPLOYMENTS}?timeout=soon",
        NULL_TASK.encode(),
        [("Content-Type", "application/yaml")],
    )
    assert bad_query.status == 400
    assert (
        "'timeout' must be a positive number of seconds, got 'soon'" in bad_query.json()["detail"]
    )


async def test_web_pages_cannot_change_deployments(orchestrator: Client) -> None:
    origin = [("Origin", "https://evil.example")]
    reply = await orchestrator.post(DEPLOYMENTS, {"ensemble": NULL_TASK}, headers=origin)
    assert reply.status == 403
    assert reply.json()["error"] == "CrossOrigin"
    assert "https://evil.example" in reply.json()["detail"]
    assert (await orchestrator.get(DEPLOYMENTS)).json() == []
    id = (await orchestrator.post(DEPLOYMENTS, {"ensemble": NULL_TASK})).json()["id"]
    for method, path in (
        ("POST", f"{DEPLOYMENTS}/{id}/shutdown"),
        ("DELETE", f"{DEPLOYMENTS}/{id}"),
    ):
        refused = await orchestrator.request(method, path, headers=origin)
        assert refused.status == 403, path
    assert (await orchestrator.get(f"{DEPLOYMENTS}/{id}")).json()["state"] == "Preparing"


async def test_unknown_deployments_are_404(orchestrator: Client) -> None:
    for method, path in (
        ("GET", f"{DEPLOYMENTS}/dnope"),
        ("GET", f"{DEPLOYMENTS}/dnope/manifest"),
        ("GET", f"{DEPLOYMENTS}/dnope/logs"),
        ("POST", f"{DEPLOYMENTS}/dnope/shutdown"),
        ("DELETE", f"{DEPLOYMENTS}/dnope"),
    ):
        reply = await orchestrator.request(method, path)
        assert reply.status == 404, (method, path)
        assert reply.json() == {
            "error": "UnknownDeployment",
            "detail": "no deployment 'dnope' on this orchestrator",
        }


async def test_shutdown_then_delete(orchestrator: Client) -> None:
    id = (await orchestrator.post(DEPLOYMENTS, {"ensemble": NULL_TASK})).json()["id"]
    # Only an ended deployment can be deleted.
    refused = await orchestrator.request("DELETE", f"{DEPLOYMENTS}/{id}")
    assert refused.status == 409
    assert refused.json() == {
        "error": "DeploymentError",
        "detail": f"deployment {id} is Preparing: shut it down first",
    }
    reply = await orchestrator.post(f"{DEPLOYMENTS}/{id}/shutdown")
    assert reply.status == 202
    assert reply.json()["state"] in ("ShuttingDown", "Completed")
    status = await wait_state(orchestrator, id, "Completed")
    assert status["history"][-1]["text"] == "shut down on request"
    # Shutting down an ended deployment answers it as it is.
    again = await orchestrator.post(f"{DEPLOYMENTS}/{id}/shutdown")
    assert (again.status, again.json()["state"]) == (202, "Completed")
    deleted = await orchestrator.request("DELETE", f"{DEPLOYMENTS}/{id}")
    assert (deleted.status, deleted.json()) == (200, {"deleted": id})
    assert (await orchestrator.get(f"{DEPLOYMENTS}/{id}")).status == 404
    assert (await orchestrator.get(DEPLOYMENTS)).json() == []


async def test_a_node_without_a_store_orchestrates_nothing(user: Identity) -> None:
    async with running_node(user) as node, serving(node) as url:
        client = Client(url)
        for method, path in (("GET", DEPLOYMENTS), ("GET", f"{DEPLOYMENTS}/d1")):
            reply = await client.request(method, path)
            assert reply.status == 503
            assert reply.json()["error"] == "Unavailable"
            assert "without a store" in reply.json()["detail"]
        posted = await client.post(DEPLOYMENTS, {"ensemble": NULL_TASK})
        assert posted.status == 503


async def test_a_null_task_runs_to_completion(provider: Client) -> None:
    reply = await provider.post(DEPLOYMENTS, {"ensemble": NULL_TASK})
    assert reply.status == 201, reply.body
    id = reply.json()["id"]
    status = await wait_state(provider, id, "Completed", "Failed")
    assert status["state"] == "Completed", status
    assert status["reason"] == "every task completed"
    assert status["bids"] >= 1
    states = [entry["state"] for entry in status["history"]]
    for state in ("Preparing", "Committing", "Provisioning", "Running", "Completed"):
        assert state in states

    logs = (await provider.get(f"{DEPLOYMENTS}/{id}/logs")).json()
    assert list(logs["logs"]) == ["n1/job"]
    assert logs["logs"]["n1/job"][0]["stream"] == "stdout"
    assert "null executor" in logs["logs"]["n1/job"][0]["text"]
    for name in ("job", "n1/job"):
        only = (await provider.get(f"{DEPLOYMENTS}/{id}/logs?allocation={name}")).json()
        assert only["logs"] == logs["logs"]
    missing = await provider.get(f"{DEPLOYMENTS}/{id}/logs?allocation=web")
    assert missing.status == 404
    assert missing.json()["error"] == "UnknownAllocation"
    assert "n1/job" in missing.json()["detail"]

    manifest = (await provider.get(f"{DEPLOYMENTS}/{id}/manifest")).json()
    assert manifest["state"] == "Completed"
    assert json.dumps(manifest)  # plain JSON all the way down


async def test_writes_are_refused_unless_the_operator_turned_them_on(tmp_path: Path) -> None:
    """Secure by default: unsigned deploys, shutdowns and deletes are refused, saying how to do
    it (the signed gateway) or how to allow it; reading stays open."""
    node_cm = orchestrating_node(Identity.generate(), tmp_path, unsigned_writes=False)
    async with node_cm as node, serving(node) as url:
        client = Client(url)
        for method, path in (
            ("POST", DEPLOYMENTS),
            ("POST", f"{DEPLOYMENTS}/d1/shutdown"),
            ("DELETE", f"{DEPLOYMENTS}/d1"),
        ):
            reply = await send(
                url,
                method,
                path,
                json.dumps({"ensemble": "x"}).encode(),
                [("Content-Type", "application/json")],
            )
            assert reply.status == 403, (method, path, reply.body)
            problem = reply.json()
            assert problem["error"] == "Unauthorized"
            assert "rest.unsigned_writes is off" in problem["detail"]
            assert "dmsnode deploy" in problem["detail"]
        assert (await client.get(DEPLOYMENTS)).status == 200
        assert node.orchestrator is not None and node.orchestrator.deployments == {}
