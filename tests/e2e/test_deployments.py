"""Deployments across real ``dmsnode run`` processes on loopback, with the process executor.

One orchestrator and several providers, trust set up as an organisation would (every node
anchors the operator as root and holds its powerline grants of /dms/deployment and
/dms/allocation). Providers are killed with SIGKILL mid-way, the orchestrator is restarted
mid-deployment, and after every scenario every node's ledger must hold nothing: nothing is
double-allocated or leaked.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from dmsnode.client import NodeClient
from dmsnode.errors import RequestRefused
from dmsnode.localnet import LocalNet, LocalNode, small_share

pytestmark = pytest.mark.slow

#: Fast timings, so that failures are noticed within seconds.
ORCHESTRATOR = {
    "bid_timeout_ms": 1000,
    "liveness_interval_ms": 500,
    "liveness_misses": 3,
    "step_timeout_ms": 5000,
}
PROVIDER = {"commit_ttl_s": 4, "orphan_timeout_s": 60}
SHARE = small_share()

HELLO = """
version: "V1"
allocations:
  hello:
    type: task
    executor: process
    resources: {cpu: {cores: 0.25}, ram: {size: 64MiB}, disk: {size: 100MiB}}
    execution:
      type: process
      command: ["/bin/sh", "-c", "echo hello from $GREETER"]
      environment: {GREETER: a process allocation}
nodes:
  node1:
    allocations: [hello]
"""

SERVICE = """
version: "V1"
allocations:
  web:
    type: service
    executor: process
    resources: {cpu: {cores: 0.25}, ram: {size: 64MiB}, disk: {size: 100MiB}}
    execution:
      type: process
      command: ["/bin/sh", "-c", "echo serving; while true; do sleep 1; done"]
nodes:
  front:
    allocations: [web]
    failure_recovery: redeploy
"""


class Net:
    """An orchestrator and providers, started, trust set up, providers onboarded."""

    def __init__(self, net: LocalNet, orchestrator: LocalNode, providers: list[LocalNode]) -> None:
        self.net = net
        self.orchestrator = orchestrator
        self.providers = providers

    async def call(self, node: LocalNode, beh: str, body: Any = None) -> Any:
        return await self.net.call(node, beh, body, operator=self.orchestrator)

    async def deploy(self, ensemble: str, timeout: float = 60) -> str:
        summary = await self.call(
            self.orchestrator,
            "/dms/node/deployment/new",
            {"ensemble": ensemble, "timeout": timeout},
        )
        return str(summary["id"])

    async def status(self, id: str) -> dict[str, Any]:
        status: dict[str, Any] = await self.call(
            self.orchestrator, "/dms/node/deployment/status", {"id": id}
        )
        return status

    async def wait(self, id: str, *states: str, timeout: float = 60) -> dict[str, Any]:
        with trio.fail_after(timeout):
            while True:
                status = await self.status(id)
                if status["state"] in states:
                    return status
                if status["state"] in ("Failed", "Completed"):
                    raise AssertionError(f"ended {status['state']}: {status['reason']}")
                await trio.sleep(0.2)

    def by_did(self, did: str) -> LocalNode:
        return next(n for n in self.providers if n.did == did)

    async def held(self, node: LocalNode) -> list[str]:
        """What the node's ledger holds (commitments and allocations)."""
        state = await self.call(node, "/dms/node/resources/allocated")
        return [r["alloc_id"] for r in state["commitments"] + state["allocations"]]

    async def empty(self, node: LocalNode, *, timeout: float = 30) -> None:
        """Wait until ``node`` holds nothing (a revert or an expiry may be on its way)."""
        with trio.fail_after(timeout):
            while await self.held(node):  # noqa: ASYNC110 (another process: nothing to wait on)
                await trio.sleep(0.2)

    async def assert_clean(self) -> None:
        """No running node holds anything."""
        for node in [self.orchestrator, *self.providers]:
            if node.process is not None:
                await self.empty(node)


async def start_net(
    net: LocalNet,
    nursery: trio.Nursery,
    providers: int,
    *,
    provider_config: list[dict[str, Any]] | None = None,
    onboard: list[bool] | None = None,
) -> Net:
    orchestrator = net.prepare("orchestrator", config={"orchestrator": ORCHESTRATOR})
    nodes = []
    for i in range(providers):
        config = {"provider": PROVIDER | ((provider_config or [{}] * providers)[i])}
        nodes.append(net.prepare(f"provider{i}", bootstrap=[orchestrator], config=config))
    net.organise(orchestrator, [orchestrator, *nodes])
    for node in [orchestrator, *nodes]:
        await net.start(node, nursery)
    result = Net(net, orchestrator, nodes)
    for node, wanted in zip(nodes, onboard or [True] * providers, strict=True):
        if wanted:
            await result.call(node, "/dms/node/onboarding/onboard", SHARE)
    await net.wait_for_peers(orchestrator, {n.did for n in nodes})
    return result


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[tuple[LocalNet, trio.Nursery]]:
    net = LocalNet(tmp_path)
    async with trio.open_nursery() as nursery:
        try:
            yield net, nursery
        finally:
            with trio.CancelScope(shield=True):
                for node in net.nodes:
                    await net.stop(node)
            nursery.cancel_scope.cancel()


async def test_deploy_logs_and_shutdown(local: tuple[LocalNet, trio.Nursery]) -> None:
    net = await start_net(*local, 2)
    id = await net.deploy(HELLO)
    status = await net.wait(id, "Completed")
    assert status["reason"] == "every task completed"
    logs = await net.call(net.orchestrator, "/dms/node/deployment/logs", {"id": id})
    lines = [line["text"] for line in logs["logs"]["node1/hello"]]
    assert "hello from a process allocation\n" in lines or "hello from a process allocation" in [
        line.strip() for line in lines
    ]
    await net.assert_clean()

    service = await net.deploy(SERVICE)
    status = await net.wait(service, "Running")
    host = net.by_did(status["nodes"]["front"]["provider"])
    assert await net.held(host) == [f"{service}/front"]
    listed = await net.call(net.orchestrator, "/dms/node/deployment/list")
    assert {d["id"] for d in listed} == {id, service}
    await net.call(net.orchestrator, "/dms/node/deployment/shutdown", {"id": service})
    status = await net.wait(service, "Completed")
    assert status["reason"] == "shut down on request"
    logs = await net.call(net.orchestrator, "/dms/node/deployment/logs", {"id": service})
    assert "serving" in "".join(line["text"] for line in logs["logs"]["front/web"])
    await net.assert_clean()
    pruned = await net.call(net.orchestrator, "/dms/node/deployment/prune", {})
    assert set(pruned["pruned"]) == {id, service}


async def test_providers_that_refuse_say_why(local: tuple[LocalNet, trio.Nursery]) -> None:
    net = await start_net(
        *local,
        4,
        provider_config=[{}, {"continent": "Asia"}, {"continent": "Europe"}, {"continent": "Asia"}],
        onboard=[False, True, True, True],
    )
    not_onboarded, too_small, elsewhere, excluded = net.providers
    too_much = int(SHARE["ram"]) // (1 << 20) + 1024  # a GiB more than anyone onboarded
    ensemble = f"""
version: "V1"
allocations:
  big:
    type: task
    executor: process
    resources: {{cpu: {{cores: 0.5}}, ram: {{size: {too_much}MiB}}, disk: {{size: 100MiB}}}}
    execution: {{type: process, command: ["/bin/true"]}}
nodes:
  n1:
    allocations: [big]
    location:
      accept: [{{continent: Asia}}]
exclude_peers: [{excluded.did}]
"""
    id = await net.deploy(ensemble, timeout=4)
    status = await net.wait(id, "Failed", timeout=30)
    assert "not placed by its deadline" in status["reason"]
    manifest = await net.call(net.orchestrator, "/dms/node/deployment/manifest", {"id": id})
    reasons = {r["provider"]: r["reason"] for r in manifest["refusals"]}
    assert reasons[not_onboarded.did] == "this node is not onboarded"
    assert "not enough RAM: asked" in reasons[too_small.did]
    assert "Europe is not one accepted (Asia)" in reasons[elsewhere.did]
    assert reasons[excluded.did] == "the ensemble excludes this provider"
    # The providers said it in their own events too.
    client = NodeClient(too_small.api)
    events = await trio.to_thread.run_sync(client.get, "/api/v1/events?kind=deployment.no_bid")
    assert any("not enough RAM" in json.dumps(e) for e in events["events"])
    await net.assert_clean()


async def test_a_provider_killed_during_commit(local: tuple[LocalNet, trio.Nursery]) -> None:
    net = await start_net(*local, 3)
    id = await net.deploy(SERVICE)
    with trio.fail_after(30):  # saved before any commit is sent: the chosen provider is known
        while True:
            status = await net.status(id)
            front = status["nodes"].get("front")
            if front and front["provider"]:
                break
            await trio.sleep(0.005)
    victim = net.by_did(front["provider"])
    await net.net.stop(victim, signal.SIGKILL)
    status = await net.wait(id, "Running", timeout=60)
    assert status["nodes"]["front"]["provider"] != victim.did
    # The victim comes back: what it held expired (a commitment) or is given back (its
    # orchestrator no longer wants it), and nothing is held twice anywhere.
    await net.net.start(victim, local[1])
    host = net.by_did(status["nodes"]["front"]["provider"])
    assert await net.held(host) == [f"{id}/front"]
    await net.empty(victim)
    await net.call(net.orchestrator, "/dms/node/deployment/shutdown", {"id": id})
    await net.wait(id, "Completed")
    await net.assert_clean()


async def test_a_provider_killed_while_running_is_replaced(
    local: tuple[LocalNet, trio.Nursery],
) -> None:
    net = await start_net(*local, 2)
    id = await net.deploy(SERVICE)
    status = await net.wait(id, "Running")
    victim = net.by_did(status["nodes"]["front"]["provider"])
    await net.net.stop(victim, signal.SIGKILL)
    with trio.fail_after(60):
        while True:
            status = await net.status(id)
            front = status["nodes"].get("front")
            if status["state"] == "Running" and front and front["provider"] != victim.did:
                break
            await trio.sleep(0.2)
    history = " | ".join(e["text"] for e in status["history"])
    assert "stopped answering: redeploy" in history
    # Back from the dead, the victim finds its execution still running (the process executor's
    # monitors outlive the daemon), asks the orchestrator, and gives everything back.
    await net.net.start(victim, local[1])
    await net.empty(victim)
    await net.call(net.orchestrator, "/dms/node/deployment/shutdown", {"id": id})
    await net.wait(id, "Completed")
    await net.assert_clean()


async def test_an_orchestrator_restarted_mid_deployment_resumes(
    local: tuple[LocalNet, trio.Nursery],
) -> None:
    net = await start_net(*local, 2)
    slow = (
        SERVICE.replace(
            "allocations:\n  web:",
            "allocations:\n  setup:\n    type: task\n    executor: process\n"
            "    resources: {cpu: {cores: 0.25}, ram: {size: 64MiB}, disk: {size: 100MiB}}\n"
            '    execution: {type: process, command: ["/bin/sleep", "2"]}\n  web:',
        )
        .replace("allocations: [web]", "allocations: [setup, web]")
        .replace(
            '    execution:\n      type: process\n      command: ["/bin/sh"',
            '    depends_on: [setup]\n    execution:\n      type: process\n      command: ["/bin/sh"',
        )
    )
    assert "depends_on" in slow
    id = await net.deploy(slow)
    await net.wait(id, "Provisioning")
    await net.net.stop(net.orchestrator, signal.SIGKILL)
    started = time.monotonic()
    await net.net.start(net.orchestrator, local[1])
    status = await net.wait(id, "Running", timeout=60)
    assert time.monotonic() - started < 60
    history = " | ".join(e["text"] for e in status["history"])
    assert "resumed after the orchestrator restarted" in history
    await net.call(net.orchestrator, "/dms/node/deployment/shutdown", {"id": id})
    await net.wait(id, "Completed")
    await net.assert_clean()


async def test_an_unknown_deployment_is_refused_by_name(
    local: tuple[LocalNet, trio.Nursery],
) -> None:
    net = await start_net(*local, 1)
    with pytest.raises(RequestRefused, match="no deployment 'nope'"):
        await net.status("nope")


async def test_the_service_pair_example(local: tuple[LocalNet, trio.Nursery]) -> None:
    """Two services on two providers, with ports, http health checks and an edge constraint:
    each answers on its public port, both are healthy, then shut down."""
    net = await start_net(*local, 2)
    text = (Path(__file__).parents[2] / "examples" / "ensembles" / "service-pair.yaml").read_text()
    id = await net.deploy(text)
    status = await net.wait(id, "Running", timeout=90)
    assert {n["provider"] for n in status["nodes"].values()} == {p.did for p in net.providers}
    for slot in ("front", "back"):
        (allocation,) = status["nodes"][slot]["allocations"].values()
        assert allocation["state"] == "running"
        assert allocation["healthy"] is True
    front = status["nodes"]["front"]["ports"]
    assert front == [{"public": 18080, "private": 8000, "allocation": "web"}]
    (back,) = status["nodes"]["back"]["ports"]
    for port in (18080, back["public"]):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
            assert (await stream.receive_some(100)).startswith(b"HTTP/1.0 200")
    await net.call(net.orchestrator, "/dms/node/deployment/shutdown", {"id": id})
    await net.wait(id, "Completed")
    await net.assert_clean()
