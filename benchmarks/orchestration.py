"""Deployments end to end: many simulated providers in one process, and three real nodes over TCP.

``python -m benchmarks.orchestration`` prints JSON lines (``benchmarks._measure.emit``);
``--providers N``, ``--deployments N`` (one-allocation), ``--ten-allocation N`` and
``--tcp-rounds N`` make smaller runs, ``--quick`` a smoke run, and ``--profile FILE`` writes a
cProfile of the simulated phases.

**Simulated** (:class:`dmsnode.simulation.Simulation`): 1,000 providers and one orchestrator,
each a real :class:`~nuactor.ActorSystem` with its own identity, trust context, SQLite store and
ledger and the real provider and orchestrator code, on nuactor's memory transport with the
``null`` executor. The stores live in a temporary directory on tmpfs (``/dev/shm`` where it
exists) so that the disk is not what is measured, and the objects of the simulation built
before the phases are frozen out of the garbage collector (a real node is one actor system, not
a thousand: full collections scanning ~650,000 objects took seconds out of each phase). Three
phases, each submitting all its deployments at once (one task per deployment, through
:meth:`Orchestrator.deploy`):

- 200 one-allocation ensembles (one node, one allocation) on the fresh network, names suffixed
  ``_cold``: the providers asked have mostly never heard from the orchestrator, so each checks
  its delegation chain for the first time (two tokens decoded, their signatures checked);
- then every provider hears from the orchestrator once (a status call about no deployment), as
  in a network that has been up a while, and 200 more one-allocation ensembles: unsuffixed
  names, the figures the goal is about;
- 20 ten-allocation ensembles, names suffixed ``_10alloc``: five nodes of two allocations
  each (every node of an ensemble gets a provider of its own).

Every allocation is a null *service* (no ``run_for``: it runs until stopped), so Running is
reached and held. Per phase:

- ``placements_per_s``: allocations Running / wall time from the first ``deploy`` to the last
  deployment Running (goal >= 100 for the one-allocation phase);
- ``time_to_running_p50_s`` / ``time_to_running_p99_s``: per deployment, from calling
  ``deploy`` (what ``/dms/node/deployment/new`` calls) until it is Running (goal p99 <= 2 s);
- ``messages_per_placement``: envelopes sent by every node during the phase / allocations;
- ``time_to_running_p50_over_rtt``: the p50 over the baseline below;
- ``cpu_ms_per_placement``: CPU time of the process (every thread) during the phase per
  allocation, which a busy machine disturbs less than the wall times;
- ``deployments_failed``: deployments that ended Failed instead of Running (their reasons
  are printed as ``{"name": "failure", ...}`` lines).

Then every deployment is shut down (:meth:`Orchestrator.shutdown`) and, once all are Completed,
every provider's ledger and hosted table must be empty: ``ledgers_clean`` is 1 if so, else 0.

Baseline, measured in the same run before, between and after the phases (median of all
batches): ``invoke_rtt_baseline_s``, one bare ``system.invoke`` round trip from the
orchestrator's node to an echo actor on a provider's node, on the same memory network and
through the same authorisation as the orchestrator's calls (a ``/dms/deployment`` behaviour).

**Over TCP** (:class:`dmsnode.localnet.LocalNet`): three ``dmsnode run`` processes on loopback,
set up as an operator would (each node anchors the operator, the first node's ``user`` key, as
root; the operator grants each node ``/dms/deployment`` and ``/dms/allocation`` with powerline
delegations; every node onboarded), then ``examples/ensembles/process-hello.yaml`` (a task run
by the process executor) deployed through the first node's API (``/dms/node/deployment/new``)
and polled with ``/dms/node/deployment/status``:

- ``tcp_hello_time_to_running_s``: from sending ``deployment/new`` until a poll sees it Running
  or Completed (the task may complete between two polls), median over the rounds;
- ``tcp_hello_time_to_running_server_s``: the same as the orchestrator recorded it (its
  history: creation to the Running entry), median over the rounds;
- ``tcp_api_call_baseline_s``: the baseline, measured before each deployment: one signed
  call through the same API answered at once (``/dms/node/deployment/list``), median.

Each hello must have printed its greeting (its logs are checked once it completed).

Where that part cannot run, a line ``{"name": "tcp_hello", "unavailable": reason}`` says why
(with the tail of the node logs) instead.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from dmsnode.client import NodeClient
from dmsnode.ensemble import Ensemble, parse
from dmsnode.localnet import LocalNet, LocalNode, small_share
from dmsnode.orchestrator import DeploymentState, Orchestrator
from dmsnode.simulation import Simulation
from nuactor import Actor, Context, Handle, Keystore, TrustContext

from ._measure import emit

S = DeploymentState
ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "ensembles" / "process-hello.yaml"

PROVIDERS = 1_000
ONE_ALLOCATION = 200
TEN_ALLOCATION = 20
#: Sequential invokes per baseline batch.
RTT_BATCH = 300
#: A deployment not Running by then counts as failed (seconds).
DEPLOY_TIMEOUT = 30.0
TCP_ROUNDS = 3
ECHO_BEHAVIOUR = "/dms/deployment/bench-echo"

RESOURCES = "{cpu: {cores: 0.25}, ram: {size: 64MiB}, disk: {size: 100MiB}}"


def one_allocation(index: int) -> str:
    """An ensemble of one node with one null service."""
    return f"""\
version: "V1"
metadata:
  description: benchmark {index}, one allocation
allocations:
  svc:
    type: service
    executor: "null"
    resources: {RESOURCES}
    execution: {{type: "null"}}
nodes:
  node:
    allocations: [svc]
"""


def ten_allocations(index: int) -> str:
    """An ensemble of five nodes, each with two null services."""
    allocations = "".join(
        f"""\
  svc{i}:
    type: service
    executor: "null"
    resources: {RESOURCES}
    execution: {{type: "null"}}
"""
        for i in range(10)
    )
    nodes = "".join(
        f"  node{n}:\n    allocations: [svc{2 * n}, svc{2 * n + 1}]\n" for n in range(5)
    )
    return f"""\
version: "V1"
metadata:
  description: benchmark {index}, ten allocations on five nodes
allocations:
{allocations}nodes:
{nodes}"""


def emit_small(name: str, value: float, unit: str) -> None:
    """:func:`emit` for values far below 1 (four significant digits, not four decimals)."""
    print(json.dumps({"name": name, "value": float(f"{value:.4g}"), "unit": unit}), flush=True)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (p99 of 200 values is the 198th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def tmpfs() -> str | None:
    """A directory on tmpfs for the stores, if the machine has one."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


# --- simulated ---------------------------------------------------------------------------------


@dataclass
class Phase:
    """What one phase measured."""

    allocations: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    messages: int = 0
    times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)


class Echo(Actor):
    """The baseline's far end: answers with the body."""

    def __init__(self) -> None:
        super().__init__()
        self.add_behaviour(ECHO_BEHAVIOUR, self.echo)

    async def echo(self, ctx: Context, body: Any) -> Any:
        return body


async def rtt_batch(sim: Simulation, target: Handle) -> float:
    """Median seconds of ``RTT_BATCH`` sequential invokes orchestrator -> provider echo."""
    system = sim.orchestrators[0].system
    samples = []
    for i in range(RTT_BATCH):
        start = time.perf_counter()
        await system.invoke(target, ECHO_BEHAVIOUR, i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


async def warm_up(sim: Simulation) -> None:
    """Let every provider hear from the orchestrator once (a status call about no deployment),
    as in a network that has been up a while: each checks the orchestrator's delegation chain
    the first time (two tokens decoded, their signatures checked) and remembers it."""
    node = sim.orchestrators[0]
    limit = trio.CapacityLimiter(64)

    async def hello(provider: str) -> None:
        async with limit:
            await node.system.invoke(
                Handle(provider, "root"), "/dms/deployment/status", {"deployment": "warm-up"}
            )

    async with trio.open_nursery() as nursery:
        for provider in sim.providers:
            nursery.start_soon(hello, provider.did)


async def run_phase(sim: Simulation, ensembles: Sequence[Ensemble]) -> Phase:
    """Deploy ``ensembles`` all at once; wait for every one to be Running (or to fail)."""
    orchestrator = sim.orchestrators[0].orchestrator
    assert orchestrator is not None
    phase = Phase()

    async def one(ensemble: Ensemble) -> None:
        start = time.perf_counter()
        deployment = await orchestrator.deploy(ensemble, timeout=DEPLOY_TIMEOUT)
        phase.ids.append(deployment.id)
        deployment = await orchestrator.wait(deployment.id, [S.RUNNING])
        if deployment.state is S.RUNNING:
            phase.times.append(time.perf_counter() - start)
            phase.allocations += len(ensemble.allocations)
        else:
            phase.failures.append(f"{deployment.id}: {deployment.state.value}: {deployment.reason}")

    before = sim.envelopes_out()
    cpu = time.process_time()
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for ensemble in ensembles:
            nursery.start_soon(one, ensemble)
    phase.wall = time.perf_counter() - start
    phase.cpu = time.process_time() - cpu
    phase.messages = sim.envelopes_out() - before
    return phase


async def shut_down(sim: Simulation, orchestrator: Orchestrator, ids: Sequence[str]) -> bool:
    """Shut every deployment down, wait until all are terminal, and say whether every
    provider's ledger and hosted table are empty afterwards."""
    for id in ids:
        await orchestrator.shutdown(id)
    with trio.fail_after(60):
        for id in ids:
            await orchestrator.wait(id, [S.COMPLETED])
    clean = True
    for node in sim.providers:
        assert node.ledger is not None and node.provider is not None
        state = await node.ledger.state()
        if state.records or node.provider.hosted:
            clean = False
            print(
                json.dumps(
                    {
                        "name": "ledger_not_empty",
                        "node": node.name,
                        "records": [r.to_dict() for r in state.records],
                        "hosted": list(node.provider.hosted),
                    },
                    default=str,
                ),
                flush=True,
            )
    return clean


def report(phase: Phase, suffix: str, rtt: float) -> None:
    emit(f"placements_per_s{suffix}", phase.allocations / phase.wall, "placements/s")
    if phase.times:
        p50 = statistics.median(phase.times)
        emit(f"time_to_running_p50_s{suffix}", p50, "s")
        emit(f"time_to_running_p99_s{suffix}", percentile(phase.times, 0.99), "s")
        emit(f"time_to_running_p50_over_rtt{suffix}", p50 / rtt, "ratio")
    emit(
        f"messages_per_placement{suffix}",
        phase.messages / max(1, phase.allocations),
        "messages/placement",
    )
    emit(f"cpu_ms_per_placement{suffix}", 1000 * phase.cpu / max(1, phase.allocations), "ms")
    emit(f"deployments_failed{suffix}", len(phase.failures), "deployments")
    for failure in phase.failures[:10]:
        print(json.dumps({"name": f"failure{suffix}", "reason": failure}), flush=True)


async def simulated(providers: int, deployments: int, ten: int, profile: str | None) -> None:
    plan = [
        (suffix, [parse(make(i)) for i in range(count)])  # parsed here: not measured
        for suffix, count, make in (
            ("_cold", deployments, one_allocation),
            ("", deployments, one_allocation),
            ("_10alloc", ten, ten_allocations),
        )
        if count > 0
    ]
    with tempfile.TemporaryDirectory(prefix="dmsnode-bench-", dir=tmpfs()) as tmp:
        sim = Simulation(Path(tmp), providers=providers)
        start = time.perf_counter()
        async with sim.running():
            emit("simulation_setup_s", time.perf_counter() - start, "s")
            # A real node is one actor system, not a thousand: the simulation's own heap
            # (~650,000 objects) is set aside so full collections do not scan it every time.
            gc.collect()
            gc.freeze()
            profiler = cProfile.Profile() if profile else None
            if profiler is not None:
                profiler.enable()
            await _phases(sim, plan)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(str(profile))
            gc.unfreeze()
            start = time.perf_counter()
        emit("simulation_teardown_s", time.perf_counter() - start, "s")


async def _phases(sim: Simulation, plan: Sequence[tuple[str, list[Ensemble]]]) -> None:
    """The baseline, the two phases (each shut down and checked), the results."""
    orchestrator = sim.orchestrators[0].orchestrator
    assert orchestrator is not None
    far = sim.providers[-1]
    await far.system.spawn(Echo(), name="bench-echo")
    target = Handle(far.did, "bench-echo")
    await rtt_batch(sim, target)  # warm up
    rtts = [await rtt_batch(sim, target)]
    clean = True
    phases: list[tuple[str, Phase]] = []
    for suffix, ensembles in plan:
        if suffix == "":
            await warm_up(sim)
        phase = await run_phase(sim, ensembles)
        phases.append((suffix, phase))
        clean = await shut_down(sim, orchestrator, phase.ids) and clean
        rtts.append(await rtt_batch(sim, target))
    rtt = statistics.median(rtts)
    emit_small("invoke_rtt_baseline_s", rtt, "s")
    for suffix, phase in phases:
        report(phase, suffix, rtt)
    emit("ledgers_clean", 1 if clean else 0, "bool")


# --- three processes over TCP --------------------------------------------------------------------


async def tcp_hello(rounds: int) -> None:
    """Time-to-Running of the hello ensemble on three ``dmsnode run`` processes."""
    with tempfile.TemporaryDirectory(prefix="dmsnode-bench-tcp-", dir=tmpfs()) as tmp:
        net = LocalNet(Path(tmp))
        try:
            observed, recorded, api = await _tcp_rounds(net, rounds)
        except Exception as exc:  # reported, not raised: the simulated figures still count
            _unavailable(f"{type(exc).__name__}: {exc}", net.nodes)
            return
        emit("tcp_hello_time_to_running_s", statistics.median(observed), "s")
        emit("tcp_hello_time_to_running_server_s", statistics.median(recorded), "s")
        emit_small("tcp_api_call_baseline_s", statistics.median(api), "s")


async def _tcp_rounds(net: LocalNet, rounds: int) -> tuple[list[float], list[float], list[float]]:
    a = net.prepare("node-a")
    b = net.prepare("node-b", bootstrap=[a])
    c = net.prepare("node-c", bootstrap=[a])
    nodes = (a, b, c)
    operator = a.user_did
    await net.cli(a, "cap", "new", "user")
    for node in nodes:
        await net.cli(node, "cap", "new", "dms")
        await net.cli(node, "cap", "anchor", "-c", "dms", "--root", operator)
        for cmd in ("/dms/deployment", "/dms/allocation"):
            granted = await net.cli(
                a, "cap", "grant", "-c", "user", "--to", node.did, "--cmd", cmd, "--powerline"
            )
            token = granted.stdout.decode().strip()
            await net.cli(node, "cap", "anchor", "-c", "dms", "--provide", token)
    identity = Keystore(a.home / "key").load("user", net.passphrase)
    trust = TrustContext.load(a.home / "cap" / "user.json", identity)
    client = NodeClient(a.api)

    def call(beh: str, body: Any) -> Any:
        envelope = client.envelope(identity, beh, body, reply=True, trust=trust)
        return client.invoke(envelope)

    async with net.running(*nodes):
        for node in nodes:
            await net.cli(
                a, "onboard", "--cpu-cores", "1", "--ram", f"{small_share()['ram']}B", "--disk", "2GiB",
                "--no-gpu", "--api", node.api,
            )  # fmt: skip
        await net.wait_for_peers(a, {b.did, c.did})
        text = HELLO.read_text()
        observed, recorded, api = [], [], []
        for index in range(rounds + 1):  # the first round warms up
            for _ in range(5):  # the baseline: one call through the API, answered at once
                start = time.perf_counter()
                await trio.to_thread.run_sync(call, "/dms/node/deployment/list", {})
                api.append(time.perf_counter() - start)
            start = time.perf_counter()
            created = await trio.to_thread.run_sync(
                call, "/dms/node/deployment/new", {"ensemble": text, "timeout": 60}
            )
            status = await _poll_until(call, str(created["id"]), ("Running", "Completed"))
            if index:
                observed.append(time.perf_counter() - start)
                recorded.append(_server_time(status))
            await _poll_until(call, str(created["id"]), ("Completed",))
            logs = await trio.to_thread.run_sync(
                call, "/dms/node/deployment/logs", {"id": created["id"]}
            )
            if "hello from" not in json.dumps(logs):
                raise RuntimeError(f"the hello task did not say hello: {logs}")
        return observed, recorded, api[5:]


async def _poll_until(
    call: Callable[[str, Any], Any], id: str, states: Sequence[str]
) -> dict[str, Any]:
    """Poll ``deployment/status`` until in one of ``states``; Failed raises with the reason."""
    with trio.fail_after(60):
        while True:
            status: dict[str, Any] = await trio.to_thread.run_sync(
                call, "/dms/node/deployment/status", {"id": id}
            )
            if status["state"] in states:
                return status
            if status["state"] == "Failed":
                raise RuntimeError(f"deployment {id} failed: {status.get('reason')}")
            await trio.sleep(0.01)


def _server_time(status: dict[str, Any]) -> float:
    """Creation to the Running entry of the orchestrator's history."""
    for entry in status.get("history", []):
        if entry.get("state") == "Running":
            return float(entry["time"]) - float(status["created_at"])
    raise RuntimeError(f"no Running entry in the history of {status['id']}")


def _unavailable(reason: str, nodes: Sequence[LocalNode]) -> None:
    """A line saying the TCP part did not run, why, and the end of each node's log."""
    logs = {}
    for node in nodes:
        path = node.home / "node.log"
        if path.exists():
            logs[node.name] = path.read_text(errors="replace").strip().splitlines()[-8:]
    print(json.dumps({"name": "tcp_hello", "unavailable": reason, "logs": logs}), flush=True)


# --- main ----------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    await simulated(args.providers, args.deployments, args.ten_allocation, args.profile)
    if args.tcp_rounds > 0:
        await tcp_hello(args.tcp_rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--providers", type=int, default=PROVIDERS, help="simulated providers")
    parser.add_argument(
        "--deployments", type=int, default=ONE_ALLOCATION, help="one-allocation deployments"
    )
    parser.add_argument(
        "--ten-allocation", type=int, default=TEN_ALLOCATION, help="ten-allocation deployments"
    )
    parser.add_argument(
        "--tcp-rounds", type=int, default=TCP_ROUNDS, help="hello deployments over TCP (0: none)"
    )
    parser.add_argument(
        "--profile", metavar="FILE", help="cProfile the simulated phases into FILE (pstats)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100 providers, 40 + 4 deployments, one TCP round (a smoke run)",
    )
    arguments = parser.parse_args()
    if arguments.providers < 1:
        parser.error("--providers must be at least 1 (the baseline's echo runs on one)")
    if arguments.quick:
        arguments.providers, arguments.deployments = 100, 40
        arguments.ten_allocation, arguments.tcp_rounds = 4, 1
    trio.run(main, arguments)
