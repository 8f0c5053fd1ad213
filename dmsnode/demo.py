"""``dmsnode demo``: the whole story on loopback, in a temporary directory.

Three real ``dmsnode run`` processes: node-a orchestrates, node-b and node-c are providers that
onboard a small share. Trust is set up as an organisation would; peers find each other; the
hello ensemble and the two-node service pair are deployed (with the process executor, or Docker
for hello when the providers have it and its image), their logs shown, shut down, and every
ledger checked empty. Everything is stopped by PID and removed at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import trio

from .errors import DmsError
from .localnet import LocalNet, LocalNode, small_share

__all__ = ["run_demo"]

Say = Callable[[str], object]

#: The example ensembles, shipped inside the package (``examples/ensembles`` links here).
EXAMPLES: Final = Path(__file__).resolve().parent / "ensemble" / "examples"
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
            await net.wait_for_peers(a, {b.did, c.did})
            say("4. node-a's peers ('dmsnode peers list', signed by the operator):")
            table = await net.cli(a, "peers", "list")
            for line in table.stdout.decode().rstrip().splitlines():
                say(f"   {line}")

            share = small_share()
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

            hello, how = _hello(Path(tmp), bool(docker.get("available")))
            say(f"6. 'dmsnode deploy {hello.name} --wait' on node-a ({how}):")
            id = await _cli_deploy(net, a, hello, say)
            await _cli(net, a, say, "deployments", "logs", id)

            pair = EXAMPLES / "service-pair.yaml"
            say("7. 'dmsnode deploy examples/ensembles/service-pair.yaml --wait': two services,")
            say("   one per provider, each with a public port and an http health check:")
            pair_id = await _cli_deploy(net, a, pair, say)
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
            await _cli(net, a, say, "deployments", "logs", pair_id, tail=4)
            await _cli(net, a, say, "deployments", "shutdown", pair_id, "--wait")

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


def _describe(share: dict[str, Any]) -> str:
    return (
        f"{share['cpu_cores']} core, {share['ram'] / (1 << 30):.2f} GiB RAM, {share['disk']} disk"
    )


def _hello(tmp: Path, docker: bool) -> tuple[Path, str]:
    """The hello ensemble for Docker (when the providers have it and its image is here), else
    its process twin; and how it runs."""
    image = os.environ.get("DMSNODE_TEST_IMAGE", "busybox:1.36")
    if docker and _image_present(image):
        path = tmp / "hello.yaml"
        path.write_text((EXAMPLES / "hello.yaml").read_text().replace("busybox:1.36", image))
        return path, f"Docker, image {image}"
    return EXAMPLES / "process-hello.yaml", "the process executor"


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


async def _cli_deploy(net: LocalNet, node: LocalNode, path: Path, say: Say) -> str:
    """``dmsnode deploy PATH --wait`` on ``node``, its output said; the deployment's id."""
    output = await _cli(net, node, say, "deploy", str(path), "--wait", "--deadline", "60")
    for line in output:
        words = line.split()
        if len(words) >= 2 and words[0] == "deployment":
            return words[1]
    raise DmsError(f"'dmsnode deploy' printed no deployment id: {output}")


async def _cli(
    net: LocalNet, node: LocalNode, say: Say, *args: str, tail: int | None = None
) -> list[str]:
    """Run ``dmsnode ARGS`` in ``node``'s home and say what it printed (its last ``tail``
    lines)."""
    result = await net.cli(node, *args, check=False)
    lines = result.stdout.decode().rstrip().splitlines()
    shown = lines if tail is None else lines[-tail:]
    say(f"   $ dmsnode {' '.join(args)}")
    for line in shown:
        say(f"     {line}")
    if result.returncode != 0:
        raise DmsError(f"'dmsnode {' '.join(args)}' failed: {result.stderr.decode().strip()}")
    return lines


async def _http_get(port: int) -> str:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.0\r\n\r\n")
        data = await stream.receive_some(200)
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def _elapsed(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"
