"""Deployments end to end on simulated nodes: real actor systems, stores, ledgers, provider and
orchestrator code on the memory transport, with the null executor.

After every scenario every provider's ledger is checked: nothing committed or allocated may be
left behind (:func:`assert_clean`), and nothing may be held twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from dmsnode.deployment import node_part
from dmsnode.ensemble import Location, parse
from dmsnode.errors import BadRequest, ExecutorError, StoreError
from dmsnode.orchestrator import Deployment, DeploymentState, Orchestrator, OrchestratorSettings
from dmsnode.provider import ProviderSettings
from dmsnode.resources import NotEnoughResources, Resources
from dmsnode.simulation import SimNode, Simulation
from nuactor import Handle
from nuactor.errors import RemoteError

S = DeploymentState
FAST = OrchestratorSettings(
    bid_timeout=0.5,
    step_timeout=3.0,
    liveness_interval=0.2,
    liveness_misses=3,
    retry_pause=0.05,
    deployment_timeout=20.0,
)


def ensemble(
    allocations: str, nodes: str, extra: str = ""
) -> Any:  # the YAML of a small ensemble, parsed
    return parse(f'version: "V1"\nallocations:\n{allocations}\nnodes:\n{nodes}\n{extra}')


def null(
    name: str,
    kind: str = "task",
    *,
    run_for: str = "0.1s",
    cores: float = 1,
    extra: str = "",
    exit_code: int = 0,
) -> str:
    execution = f'{{type: "null", run_for: {run_for}, exit_code: {exit_code}}}'
    if run_for == "0":
        execution = f'{{type: "null", exit_code: {exit_code}}}'
    return (
        f'  {name}:\n    type: {kind}\n    executor: "null"\n'
        f"    resources: {{cpu: {{cores: {cores}}}, ram: {{size: 1}}, disk: {{size: 1}}}}\n"
        f"    execution: {execution}\n{extra}"
    )


def node(name: str, allocations: str, extra: str = "") -> str:
    return f"  {name}:\n    allocations: [{allocations}]\n{extra}"


HELLO = ensemble(null("hello"), node("n1", "hello"))
SERVICE = ensemble(
    null("web", "service", run_for="0"),
    node("front", "web", "    failure_recovery: redeploy\n"),
)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulation]:
    async with Simulation(tmp_path, providers=3, orchestrator_settings=FAST).running() as sim:
        yield sim
        await assert_clean(sim)


def orchestrator(sim: Simulation) -> Orchestrator:
    found = sim.orchestrators[0].orchestrator
    assert found is not None
    return found


async def assert_clean(sim: Simulation, *, skip: set[str] | None = None) -> None:
    """No provider holds anything (a commitment that expired counts as released)."""
    for provider in sim.providers:
        if skip and provider.did in skip:
            continue
        assert provider.ledger is not None
        with trio.fail_after(10):
            # A revert may still be on its way; the ledger has no change event to wait on.
            while (await provider.ledger.state()).records:  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert provider.provider is not None
        assert provider.provider.hosted == {}


async def wait_for(
    deployment: Deployment, *states: DeploymentState, timeout: float = 20
) -> Deployment:
    with trio.fail_after(timeout):
        while deployment.state not in states:
            await deployment.changed.wait()
    return deployment


def provider_of(sim: Simulation, did: str) -> SimNode:
    return next(p for p in sim.providers if p.did == did)


async def test_a_task_runs_to_completion_and_its_logs_are_kept(sim: Simulation) -> None:
    deployment = await orchestrator(sim).deploy(HELLO)
    await wait_for(deployment, S.COMPLETED)
    states = [entry["state"] for entry in deployment.manifest["history"]]
    for state in ("Preparing", "Committing", "Provisioning", "Running", "Completed"):
        assert state in states
    assert deployment.reason == "every task completed"
    assert deployment.manifest["bids"] >= 1
    logs = await orchestrator(sim)._on_logs(None, {"id": deployment.id})  # type: ignore[arg-type]
    assert "n1/hello" in logs["logs"]
    await assert_clean(sim)


async def test_a_service_runs_until_shut_down(sim: Simulation) -> None:
    deployment = await orchestrator(sim).deploy(SERVICE)
    await wait_for(deployment, S.RUNNING)
    provider = provider_of(sim, deployment.nodes["front"]["provider"])
    assert provider.ledger is not None
    held = (await provider.ledger.state()).allocations
    assert [a.alloc_id for a in held] == [f"{deployment.id}/front"]
    await trio.sleep(0.5)  # supervised a while: still running
    assert deployment.state is S.RUNNING
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)
    assert deployment.reason == "shut down on request"
    await assert_clean(sim)


async def test_the_deployment_is_saved_before_each_step(sim: Simulation) -> None:
    deployment = await orchestrator(sim).deploy(SERVICE)
    await wait_for(deployment, S.RUNNING)
    store = sim.orchestrators[0].store
    row = await store.read(
        lambda conn: conn.execute(
            "SELECT state, manifest FROM deployments WHERE id = ?", (deployment.id,)
        ).fetchone()
    )
    assert row["state"] == "Running"
    assert deployment.nodes["front"]["provider"] in row["manifest"]
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)


async def test_depends_on_starts_in_waves(sim: Simulation) -> None:
    spec = ensemble(
        null("setup", run_for="0.3s")
        + null("app", "service", run_for="0", extra="    depends_on: [setup]\n"),
        node("n1", "setup, app"),
    )
    deployment = await orchestrator(sim).deploy(spec)
    await wait_for(deployment, S.RUNNING)
    allocations = deployment.nodes["n1"]["allocations"]
    assert allocations["setup"]["state"] == "completed"
    assert allocations["app"]["started_at"] >= allocations["setup"]["finished_at"]
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)


async def test_redundant_copies_land_on_distinct_providers(sim: Simulation) -> None:
    spec = ensemble(
        null("web", "service", run_for="0"), node("front", "web", "    redundancy: 2\n")
    )
    deployment = await orchestrator(sim).deploy(spec)
    await wait_for(deployment, S.RUNNING)
    assert set(deployment.nodes) == {"front", "front#1", "front#2"}
    assert len({n["provider"] for n in deployment.nodes.values()}) == 3
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)


async def test_too_big_for_anyone_fails_at_its_deadline_saying_why(sim: Simulation) -> None:
    spec = ensemble(null("big", cores=64), node("n1", "big"))
    deployment = await orchestrator(sim).deploy(spec, timeout=1.5)
    await wait_for(deployment, S.FAILED)
    assert "not placed by its deadline" in deployment.reason
    assert "not enough CPU" in deployment.reason
    refusals = deployment.manifest["refusals"]
    assert {r["provider"] for r in refusals} == {p.did for p in sim.providers}
    assert all("not enough CPU: asked 64 cores" in r["reason"] for r in refusals)


async def test_a_provider_that_is_not_onboarded_does_not_bid(sim: Simulation) -> None:
    for provider in sim.providers[1:]:
        assert provider.ledger is not None
        await provider.ledger.offboard()
    deployment = await orchestrator(sim).deploy(SERVICE)
    await wait_for(deployment, S.RUNNING)
    assert deployment.nodes["front"]["provider"] == sim.providers[0].did
    reasons = {r["provider"]: r["reason"] for r in deployment.manifest["refusals"]}
    assert reasons[sim.providers[1].did] == "this node is not onboarded"
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)


async def test_excluded_peers_are_never_chosen(sim: Simulation) -> None:
    excluded = [p.did for p in sim.providers[:2]]
    spec = ensemble(
        null("web", "service", run_for="0"),
        node("front", "web"),
        "exclude_peers:\n" + "".join(f"  - {did}\n" for did in excluded),
    )
    deployment = await orchestrator(sim).deploy(spec)
    await wait_for(deployment, S.RUNNING)
    assert deployment.nodes["front"]["provider"] == sim.providers[2].did
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)


async def test_a_pinned_node_runs_on_its_peer(sim: Simulation) -> None:
    pinned = sim.providers[1].did
    spec = ensemble(
        null("web", "service", run_for="0"), node("front", "web", f"    peer: {pinned}\n")
    )
    deployment = await orchestrator(sim).deploy(spec)
    await wait_for(deployment, S.RUNNING)
    assert deployment.nodes["front"]["provider"] == pinned
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)


async def test_location_rules_are_applied(tmp_path: Path) -> None:
    places = [Location("Europe", "DE"), Location("Asia", "JP"), None]
    async with Simulation(
        tmp_path,
        providers=3,
        orchestrator_settings=FAST,
        location=lambda i: places[i],
    ).running() as sim:
        spec = ensemble(
            null("web", "service", run_for="0"),
            node("front", "web", "    location:\n      accept:\n        - {continent: Asia}\n"),
        )
        deployment = await orchestrator(sim).deploy(spec)
        await wait_for(deployment, S.RUNNING)
        assert deployment.nodes["front"]["provider"] == sim.providers[1].did
        reasons = {r["provider"]: r["reason"] for r in deployment.manifest["refusals"]}
        assert "Europe/DE is not one accepted (Asia)" in reasons[sim.providers[0].did]
        assert "states no location" in reasons[sim.providers[2].did]
        await orchestrator(sim).shutdown(deployment.id)
        await wait_for(deployment, S.COMPLETED)
        await assert_clean(sim)


async def test_a_refused_commit_reverts_and_bids_again(
    sim: Simulation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two nodes that need two providers, and only two providers onboarded: both are chosen,
    one refuses its commit (once): the other's commitment is reverted, and the placement is bid
    again until it works."""
    assert sim.providers[2].ledger is not None
    await sim.providers[2].ledger.offboard()
    refusing = sim.providers[0]
    assert refusing.ledger is not None
    real_commit = refusing.ledger.commit
    refused: list[str] = []

    async def commit_once(alloc_id: str, *args: Any, **kwargs: Any) -> Any:
        refused.append(alloc_id)
        monkeypatch.setattr(refusing.ledger, "commit", real_commit)
        raise NotEnoughResources("not enough CPU: taken by someone else meanwhile")

    monkeypatch.setattr(refusing.ledger, "commit", commit_once)
    spec = ensemble(
        null("a", "service", run_for="0", cores=3) + null("b", "service", run_for="0", cores=3),
        node("n1", "a") + node("n2", "b"),
    )
    deployment = await orchestrator(sim).deploy(spec)
    await wait_for(deployment, S.RUNNING)
    assert len(refused) == 1
    history = " | ".join(e["text"] for e in deployment.manifest["history"])
    assert "placement failed, bidding again" in history
    assert "taken by someone else" in history
    assert "reverted n1, n2: two-phase commit failed" in history
    providers = {n["provider"] for n in deployment.nodes.values()}
    assert providers == {sim.providers[0].did, sim.providers[1].did}
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)


async def test_a_dead_provider_is_replaced(sim: Simulation) -> None:
    deployment = await orchestrator(sim).deploy(SERVICE)
    await wait_for(deployment, S.RUNNING)
    first = deployment.nodes["front"]["provider"]
    dead = provider_of(sim, first)
    sim.disconnect(dead)
    with trio.fail_after(20):
        while deployment.nodes.get("front", {}).get("provider") in (first, None) or (
            deployment.nodes["front"]["state"] != "allocated"
        ):
            await deployment.changed.wait()
    await wait_for(deployment, S.RUNNING)
    second = deployment.nodes["front"]["provider"]
    assert second != first
    assert "stopped answering: redeploy" in " | ".join(
        e["text"] for e in deployment.manifest["history"]
    )
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)
    # The dead provider still holds its allocation (no one can tell it): its orphan timer
    # reverts it (checked in the provider's tests); every other ledger is clean.
    await assert_clean(sim, skip={first})
    assert dead.provider is not None
    await dead.provider.revert(f"{deployment.id}/front", why="test cleanup")


async def test_a_failing_task_is_restarted_then_fails_the_deployment(sim: Simulation) -> None:
    spec = ensemble(
        null("job", exit_code=3, run_for="0.01s", extra="    failure_recovery: one_for_one\n"),
        node("n1", "job"),
    )
    deployment = await orchestrator(sim).deploy(spec)
    await wait_for(deployment, S.FAILED, timeout=30)
    assert "exit code 3" in deployment.reason or "code 3" in deployment.reason
    assert "gave up after 3 restarts" in deployment.reason


async def test_a_failing_task_that_stays_down_fails_at_once(sim: Simulation) -> None:
    spec = ensemble(null("job", exit_code=2, run_for="0.01s"), node("n1", "job"))
    deployment = await orchestrator(sim).deploy(spec)
    await wait_for(deployment, S.FAILED)
    assert "code 2" in deployment.reason


async def test_an_orchestrator_restarted_mid_deployment_resumes(sim: Simulation) -> None:
    spec = ensemble(
        null("setup", run_for="0.5s")
        + null("app", "service", run_for="0", extra="    depends_on: [setup]\n"),
        node("n1", "setup, app"),
    )
    deployment = await orchestrator(sim).deploy(spec)
    await wait_for(deployment, S.PROVISIONING)
    fresh = await sim.restart_orchestrator(sim.orchestrators[0])
    resumed = fresh.get(deployment.id)
    assert resumed is not deployment
    await wait_for(resumed, S.RUNNING)
    assert "resumed after the orchestrator restarted" in " | ".join(
        e["text"] for e in resumed.manifest["history"]
    )
    await fresh.shutdown(resumed.id)
    await wait_for(resumed, S.COMPLETED)


async def test_a_running_deployment_is_supervised_again_after_a_restart(sim: Simulation) -> None:
    deployment = await orchestrator(sim).deploy(SERVICE)
    await wait_for(deployment, S.RUNNING)
    where = deployment.nodes["front"]["provider"]
    fresh = await sim.restart_orchestrator(sim.orchestrators[0])
    resumed = fresh.get(deployment.id)
    assert resumed.state is S.RUNNING
    await trio.sleep(0.5)
    assert resumed.nodes["front"]["provider"] == where  # not redeployed: still there
    await fresh.shutdown(resumed.id)
    await wait_for(resumed, S.COMPLETED)


async def test_only_its_orchestrator_can_touch_a_hosted_node(tmp_path: Path) -> None:
    async with Simulation(
        tmp_path, providers=1, orchestrators=2, orchestrator_settings=FAST
    ).running() as sim:
        mine, other = sim.orchestrators
        assert mine.orchestrator is not None
        deployment = await mine.orchestrator.deploy(SERVICE)
        await wait_for(deployment, S.RUNNING)
        provider = sim.providers[0].did
        with pytest.raises(RemoteError, match="belongs to another orchestrator"):
            await other.system.invoke(
                Handle(provider, "root"),
                "/dms/deployment/revert",
                {"deployment": deployment.id},
            )
        actor = deployment.nodes["front"]["allocations"]["web"]["actor"]
        with pytest.raises(RemoteError, match="belongs to another orchestrator"):
            await other.system.invoke(Handle(provider, actor), "/dms/allocation/stop", {})
        assert deployment.state is S.RUNNING
        await mine.orchestrator.shutdown(deployment.id)
        await wait_for(deployment, S.COMPLETED)
        await assert_clean(sim)


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"deployment": "d1"},
        {"deployment": "d1", "nonce": "n", "orchestrator": "x", "nodes": [], "expires": 1},
        {"deployment": "d1", "nonce": "n", "orchestrator": "x", "nodes": [{}], "expires": 1},
        {"deployment": 7, "nonce": "n", "orchestrator": "x", "nodes": [{}], "expires": 1},
    ],
)
async def test_a_hostile_bid_request_is_refused_by_name(sim: Simulation, body: Any) -> None:
    with pytest.raises(RemoteError, match="BadRequest"):
        await sim.orchestrators[0].system.invoke(
            Handle(sim.providers[0].did, "root"), "/dms/deployment/request", body
        )


async def test_a_bid_request_in_someone_elses_name_is_refused(sim: Simulation) -> None:
    body = {
        "deployment": "d1",
        "nonce": "n",
        "orchestrator": sim.providers[1].did,
        "nodes": [{"node": "n1", "executors": ["null"], "resources": Resources().to_dict()}],
        "expires": 2e9,
    }
    with pytest.raises(RemoteError, match="bids go to the sender only"):
        await sim.orchestrators[0].system.invoke(
            Handle(sim.providers[0].did, "root"), "/dms/deployment/request", body
        )


async def test_an_operator_submission_is_validated(sim: Simulation) -> None:
    with pytest.raises(BadRequest, match="invalid ensemble"):
        await orchestrator(sim)._on_new(None, {"ensemble": "version: V1\nallocations: 3\n"})  # type: ignore[arg-type]


async def test_broadcast_bid_requests(tmp_path: Path) -> None:
    settings = OrchestratorSettings(
        bid_requests="broadcast",
        bid_timeout=0.5,
        bid_quorum=3,
        step_timeout=3,
        liveness_interval=0.2,
        retry_pause=0.05,
    )
    async with Simulation(tmp_path, providers=3, orchestrator_settings=settings).running() as sim:
        assert sim.providers[2].ledger is not None
        await sim.providers[2].ledger.offboard()
        deployment = await orchestrator(sim).deploy(HELLO)
        await wait_for(deployment, S.COMPLETED)
        assert deployment.manifest["bids"] == 2
        reasons = {r["provider"]: r["reason"] for r in deployment.manifest["refusals"]}
        assert reasons == {sim.providers[2].did: "this node is not onboarded"}
        await assert_clean(sim)


async def test_a_provider_reverts_what_a_silent_orchestrator_left(tmp_path: Path) -> None:
    """An orchestrator that dies for good never reverts its nodes: each provider does, once it
    has heard nothing about them for orphan_timeout seconds."""
    async with Simulation(
        tmp_path,
        providers=2,
        orchestrator_settings=FAST,
        provider_settings=lambda i: ProviderSettings(orphan_timeout=0.6),
    ).running() as sim:
        deployment = await orchestrator(sim).deploy(SERVICE)
        await wait_for(deployment, S.RUNNING)
        host = provider_of(sim, deployment.nodes["front"]["provider"])
        assert host.provider is not None
        await trio.sleep(1.0)  # polled every 0.2 s: not an orphan
        assert list(host.provider.hosted) == [f"{deployment.id}/front"]
        sim.disconnect(sim.orchestrators[0])
        await assert_clean(sim)


async def test_an_ended_deployment_still_says_where_it_ran(sim: Simulation) -> None:
    deployment = await orchestrator(sim).deploy(HELLO)
    await wait_for(deployment, S.COMPLETED)
    status = await orchestrator(sim)._on_status(None, {"id": deployment.id})  # type: ignore[arg-type]
    (placement,) = status["placements"]
    assert placement["node"] == "n1"
    assert placement["provider"] in {p.did for p in sim.providers}
    assert placement["reached"] == "allocated"
    assert placement["allocations"]["hello"]["state"] == "completed"
    assert placement["why"] == "every task completed"


async def test_a_provider_that_offboards_by_force_is_left(sim: Simulation) -> None:
    """What a forced offboarding does (the ledger lets go, the node's hosted nodes are reverted):
    the orchestrator finds its node gone at its next poll and places it elsewhere."""
    deployment = await orchestrator(sim).deploy(SERVICE)
    await wait_for(deployment, S.RUNNING)
    first = provider_of(sim, deployment.nodes["front"]["provider"])
    assert first.ledger is not None and first.provider is not None
    released = await first.ledger.offboard(force=True)
    for allocation in released:
        await first.provider.revert(allocation.alloc_id, why="the node was offboarded")
    with trio.fail_after(20):
        while deployment.nodes.get("front", {}).get("provider") in (first.did, None) or (
            deployment.state is not S.RUNNING
        ):
            await deployment.changed.wait()
    history = " | ".join(e["text"] for e in deployment.manifest["history"])
    assert "its provider no longer hosts it" in history
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)


async def test_a_commitment_never_allocated_lapses_and_is_forgotten(tmp_path: Path) -> None:
    """An orchestrator that commits and then goes silent (it died mid-commit) holds nothing for
    long: the commitment lapses with its TTL, and the provider forgets the node."""
    async with Simulation(
        tmp_path,
        providers=1,
        orchestrator_settings=FAST,
        provider_settings=lambda i: ProviderSettings(commit_ttl=0.3, orphan_timeout=0.4),
    ).running() as sim:
        host = sim.providers[0]
        assert host.provider is not None and host.ledger is not None
        part = node_part(SERVICE, "front")
        answer = await sim.orchestrators[0].system.invoke(
            Handle(host.did, "root"),
            "/dms/deployment/commit",
            {"deployment": "d1", "node": "front", "ensemble": part},
        )
        assert answer["id"] == "d1/front"
        assert [c.alloc_id for c in (await host.ledger.state()).commitments] == ["d1/front"]
        with trio.fail_after(10):
            while "d1/front" in host.provider._orchestrators:  # noqa: ASYNC110 (no event to wait on)
                await trio.sleep(0.05)
        assert (await host.ledger.state()).records == ()
        rows = await host.store.read(lambda conn: conn.execute("SELECT * FROM hosted").fetchall())
        assert rows == []
        with pytest.raises(RemoteError, match="not committed here"):
            await sim.orchestrators[0].system.invoke(
                Handle(host.did, "root"),
                "/dms/deployment/allocate",
                {"deployment": "d1", "node": "front"},
            )


async def test_more_nodes_than_the_bid_fanout(tmp_path: Path) -> None:
    """Each node needs a provider of its own: a round asks at least two per node still to
    place, and bids of earlier rounds still count, so ten nodes are placed with a fanout of 4."""
    settings = OrchestratorSettings(
        bid_fanout=4,
        bid_timeout=0.5,
        step_timeout=3,
        liveness_interval=0.2,
        retry_pause=0.05,
        deployment_timeout=20,
    )
    async with Simulation(tmp_path, providers=12, orchestrator_settings=settings).running() as sim:
        names = [f"n{i}" for i in range(10)]
        spec = ensemble(
            "".join(null(f"a{i}", "service", run_for="0") for i in range(10)),
            "".join(node(n, f"a{i}") for i, n in enumerate(names)),
        )
        deployment = await orchestrator(sim).deploy(spec)
        await wait_for(deployment, S.RUNNING)
        assert len({n["provider"] for n in deployment.nodes.values()}) == 10
        await orchestrator(sim).shutdown(deployment.id)
        await wait_for(deployment, S.COMPLETED)
        await assert_clean(sim)


async def test_a_deployment_whose_failure_cannot_be_saved_leaves_the_others_alone(
    sim: Simulation, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    store = sim.orchestrators[0].store
    spec = ensemble(null("big", cores=64), node("n1", "big"))
    doomed = await orchestrator(sim).deploy(spec, timeout=0.5)

    async def broken(fn: Any) -> Any:
        raise StoreError("disk full")

    real_write = store.write
    monkeypatch.setattr(store, "write", broken)
    with trio.fail_after(10):
        while "could not be recorded" not in caplog.text:  # noqa: ASYNC110 (a log line)
            await trio.sleep(0.05)
    monkeypatch.setattr(store, "write", real_write)
    assert doomed.state is S.PREPARING  # never saved as Failed: resumed at the next start
    deployment = await orchestrator(sim).deploy(HELLO)
    await wait_for(deployment, S.COMPLETED)


async def test_a_revert_releases_even_when_the_execution_will_not_stop(
    sim: Simulation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An executor that fails to stop (its daemon went away) must not keep the ledger held."""
    deployment = await orchestrator(sim).deploy(SERVICE)
    await wait_for(deployment, S.RUNNING)
    host = provider_of(sim, deployment.nodes["front"]["provider"])
    assert host.provider is not None
    execution = host.provider.hosted[f"{deployment.id}/front"].allocations["web"].execution
    assert execution is not None

    async def stop(grace: float = 10.0) -> Any:
        raise ExecutorError("the executor's daemon went away")

    monkeypatch.setattr(execution, "stop", stop)
    await orchestrator(sim).shutdown(deployment.id)
    await wait_for(deployment, S.COMPLETED)
    monkeypatch.undo()
    await execution.stop(0)  # what the daemon would have done
