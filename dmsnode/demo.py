"""``dmsnode demo``: the whole story on loopback, in a temporary directory.

Three real ``dmsnode run`` processes: node-a orchestrates, node-b and node-c are providers that
onboard a small share. Trust is set up as an organisation would; peers find each other; the
hello ensemble and the two-node service pair are deployed (with the process executor, or Docker
for hello when the providers have it and its image), their logs shown, shut down, and every
ledger checked empty. Everything is stopped by PID and removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import psutil
import trio

from .errors import DmsError
from .localnet import LocalNet, LocalNode

__all__ = ["run_demo"]

Say = Callable[[str], object]

EXAMPLES: Final = Path(__file__).resolve().parent.parent / "examples" / "ensembles"
#: Fast supervision, so that the demo's steps take seconds.
ORCHESTRATOR: Final = {"bid_timeout_ms": 1000, "liveness_interval_ms": 1000}


async def run_demo(say: Say) -> None:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dmsnode-demo-") as tmp:
        net = LocalNet(Path(tmp))
        a = net.prepare("node-a", config={"orchestrator": ORCHESTRATOR})
        b = net.prepare("node-b", bootstrap=[a])
        c = net.prepare("node-c", bootstrap=[a])
        say(f"1. three nodes with fresh keys in {tmp}")
        for node in (a, b, c):
            say(f"   {node.name}: {node.did}")
        say(f"   operator (the 'user' key in node-a's home): {a.user_did}")

        say("2. trust, as an organisation sets it up ('dmsnode cap ...'): every node anchors")
        say("   the operator as root and holds its powerline grants of /dms/deployment and")
        say("   /dms/allocation, so that the nodes may deploy onto one another")
        net.organise(a, [a, b, c])

        say("3. starting three 'dmsnode run' processes (b and c bootstrap from a)")
        async with net.running(a, b, c):
            for node in (a, b, c):
                say(f"   {node.name} ready: p2p {node.ready['p2p'][0]}, api {node.ready['api']}")
            await _wait_for_peers(net, a, {b.did, c.did})
            say("4. node-a's peers ('dmsnode peers list', signed by the operator):")
            table = await net.cli(a, "peers", "list")
            for line in table.stdout.decode().rstrip().splitlines():
                say(f"   {line}")

            share = _share()
            say(f"5. node-b and node-c onboard a small share: {_describe(share)}")
            for node in (b, c):
                await net.call(node, "/dms/node/onboarding/onboard", share, operator=a)
            spec = await net.call(b, "/dms/node/hardware/spec", operator=a)
            docker = spec["executors"].get("docker", {})
            say(
                "   their executors: "
                + ", ".join(
                    f"{name} ({'available' if e['available'] else 'unavailable: ' + e['reason']})"
                    for name, e in spec["executors"].items()
                )
            )

            hello, how = _hello(bool(docker.get("available")))
            say(f"6. deploying the hello ensemble ({how}) through node-a")
            id = await _deploy(net, a, hello, say, until="Completed")
            await _show_logs(net, a, id, say)

            say("7. deploying the two-node service pair (examples/ensembles/service-pair.yaml)")
            pair = (EXAMPLES / "service-pair.yaml").read_text()
            pair_id = await _deploy(net, a, pair, say, until="Running")
            status = await net.call(a, "/dms/node/deployment/status", {"id": pair_id}, operator=a)
            for slot, node in status["nodes"].items():
                host = next(n.name for n in (b, c) if n.did == node["provider"])
                ports = ", ".join(f"{p['public']}->{p['private']}" for p in node["ports"])
                for name, allocation in node["allocations"].items():
                    health = "healthy" if allocation["healthy"] else "health unknown"
                    say(
                        f"   {slot}/{name} on {host}: {allocation['state']}, {health}, ports {ports}"
                    )
            answer = await _http_get(int(status["nodes"]["front"]["ports"][0]["public"]))
            say(f"   GET http://127.0.0.1:18080/ -> {answer}")
            await _show_logs(net, a, pair_id, say)
            say("   shutting it down")
            await net.call(a, "/dms/node/deployment/shutdown", {"id": pair_id}, operator=a)
            await _wait_state(net, a, pair_id, "Completed", say)

            say("8. every provider's ledger is empty again:")
            for node in (b, c):
                held = await net.call(node, "/dms/node/resources/allocated", operator=a)
                count = len(held["commitments"]) + len(held["allocations"])
                say(f"   {node.name}: {count} commitments or allocations held")

            refused = await net.cli(
                b, "actor", "invoke", "/dms/node/status", "--to", a.did, check=False
            )
            say("9. node-b's own user is no operator: node-a refuses it, saying why:")
            say(f"   {refused.stderr.decode().strip()}")
            say("10. stopping the nodes")
        say(f"done: all three stopped, the temporary directory is removed ({_elapsed(started)})")


def _share() -> dict[str, Any]:
    """A small share: one core, the least RAM onboarding allows (10% of the machine, rounded
    up to 256 MiB), 2 GiB of disk."""
    step = 256 << 20
    ram = -(-psutil.virtual_memory().total // 10 // step) * step
    return {"cpu_cores": 1, "ram": int(ram), "disk": "2GiB"}


def _describe(share: dict[str, Any]) -> str:
    return (
        f"{share['cpu_cores']} core, {share['ram'] / (1 << 30):.2f} GiB RAM, {share['disk']} disk"
    )


def _hello(docker: bool) -> tuple[str, str]:
    """The hello ensemble for Docker (when the providers have it and the image is here), else
    its process twin; and how it runs."""
    text = (EXAMPLES / "hello.yaml").read_text()
    image = os.environ.get("DMSNODE_TEST_IMAGE", "busybox:1.36")
    if docker and _image_present(image):
        return text.replace("busybox:1.36", image), f"Docker, image {image}"
    return (EXAMPLES / "process-hello.yaml").read_text(), "the process executor"


def _image_present(image: str) -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        found = subprocess.run(
            [docker, "image", "inspect", image], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return found.returncode == 0


async def _deploy(net: LocalNet, node: LocalNode, ensemble: str, say: Say, *, until: str) -> str:
    summary = await net.call(
        node, "/dms/node/deployment/new", {"ensemble": ensemble, "timeout": 60}, operator=node
    )
    id = str(summary["id"])
    say(f"   deployment {id}")
    await _wait_state(net, node, id, until, say)
    return id


async def _wait_state(net: LocalNet, node: LocalNode, id: str, until: str, say: Say) -> None:
    """Follow the deployment's history until ``until``, saying each step."""
    seen = 0
    with trio.fail_after(90):
        while True:
            status = await net.call(node, "/dms/node/deployment/status", {"id": id}, operator=node)
            history = status["history"]
            for entry in history[seen:]:
                say(f"   {entry['state']:<13} {entry['text']}")
            seen = len(history)
            if status["state"] == until:
                return
            if status["state"] in ("Failed", "Completed"):
                raise DmsError(f"deployment {id} ended {status['state']}: {status['reason']}")
            await trio.sleep(0.2)


async def _show_logs(net: LocalNet, node: LocalNode, id: str, say: Say) -> None:
    logs = await net.call(node, "/dms/node/deployment/logs", {"id": id}, operator=node)
    say("   logs ('dmsnode deployments logs'):")
    for where, lines in sorted(logs["logs"].items()):
        for line in lines[-3:]:
            say(f"   {where} {line['stream']}: {line['text'].rstrip()}")


async def _http_get(port: int) -> str:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
        data = await stream.receive_some(200)
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


async def _wait_for_peers(net: LocalNet, node: LocalNode, dids: set[str]) -> None:
    with trio.fail_after(30):
        while True:
            result = await net.cli(node, "peers", "list", "--json")
            connected = {p["did"] for p in json.loads(result.stdout) if p["connected"]}
            if dids <= connected:
                return
            await trio.sleep(0.2)


def _elapsed(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"
