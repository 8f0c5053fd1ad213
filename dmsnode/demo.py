"""``dmsnode demo``: three real nodes on loopback, trust set up with the ``cap`` commands, a hello
broadcast and a peer list, everything in a temporary directory and stopped at the end."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import trio

from .localnet import LocalNet, LocalNode

__all__ = ["run_demo"]

Say = Callable[[str], object]


async def run_demo(say: Say) -> None:
    with tempfile.TemporaryDirectory(prefix="dmsnode-demo-") as tmp:
        net = LocalNet(Path(tmp))
        a = net.prepare("node-a")
        b = net.prepare("node-b", bootstrap=[a])
        c = net.prepare("node-c", bootstrap=[a])
        operator = a.user_did
        say(f"1. three nodes with fresh keys in {tmp}")
        for node in (a, b, c):
            say(f"   {node.name}: {node.did}")
        say(f"   operator (the 'user' key in node-a's home): {operator}")

        say(
            "2. trust: each node anchors the operator as root ('dmsnode cap new', 'cap anchor --root')"
        )
        for node in (a, b, c):
            await net.cli(node, "cap", "new", "dms")
            await net.cli(node, "cap", "anchor", "-c", "dms", "--root", operator)

        say("3. starting three 'dmsnode run' processes (b and c bootstrap from a)")
        async with net.running(a, b, c):
            for node in (a, b, c):
                say(f"   {node.name} ready: p2p {node.ready['p2p'][0]}, api {node.ready['api']}")
            await _wait_for_peers(net, a, {b.did, c.did})
            say("4. node-a's peers ('dmsnode peers list', signed by the operator):")
            table = await net.cli(a, "peers", "list")
            for line in table.stdout.decode().rstrip().splitlines():
                say(f"   {line}")

            say("5. the operator broadcasts a hello on /nunet/hello through node-a")
            await net.cli(a, "actor", "broadcast", "/broadcast/hello", "--topic", "/nunet/hello")
            for node in (b, c):
                heard = await _wait_for_hello(net, a, node, operator)
                say(f"   {node.name} heard it (authorised by its root anchor): {heard}")

            refused = await net.cli(
                b, "actor", "invoke", "/dms/node/status", "--to", a.did, check=False
            )
            say("6. node-b's own user is no operator: node-a refuses it, saying why:")
            say(f"   {refused.stderr.decode().strip()}")
            say("7. stopping the nodes")
        say("done: all three stopped, and the temporary directory is removed")


async def _wait_for_peers(net: LocalNet, node: LocalNode, dids: set[str]) -> None:
    with trio.fail_after(30):
        while True:
            result = await net.cli(node, "peers", "list", "--json")
            connected = {p["did"] for p in json.loads(result.stdout) if p["connected"]}
            if dids <= connected:
                return
            await trio.sleep(0.2)


async def _wait_for_hello(net: LocalNet, via: LocalNode, node: LocalNode, sender: str) -> str:
    with trio.fail_after(30):
        while True:
            result = await net.cli(via, "actor", "invoke", "/dms/node/status", "--to", node.did)
            status = json.loads(result.stdout)
            if sender in status.get("hellos", {}):
                return f"hello from {sender[:24]}…"
            await trio.sleep(0.2)
