"""``dmsnode run`` as real processes: discovery, authorised calls, refusals, clean stops."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest
import trio

from dmsnode.localnet import LocalNet, LocalNode

pytestmark = pytest.mark.slow


async def cli_json(net: LocalNet, node: LocalNode, *args: str) -> object:
    result = await net.cli(node, *args, "--json")
    return json.loads(result.stdout)


async def wait_for_peer(net: LocalNet, node: LocalNode, did: str) -> list[dict[str, object]]:
    with trio.fail_after(30):
        while True:
            peers = await cli_json(net, node, "peers", "list")
            assert isinstance(peers, list)
            if any(p["did"] == did and p["connected"] for p in peers):
                return peers
            await trio.sleep(0.2)


async def test_two_daemons(tmp_path: Path) -> None:
    net = LocalNet(tmp_path)
    a = net.prepare("a")
    b = net.prepare("b", bootstrap=[a])
    for node in (a, b):
        # Each node's owner (the local 'user' key) may do anything on it.
        await net.cli(node, "cap", "new", "dms")
        await net.cli(node, "cap", "anchor", "-c", "dms", "--root", node.user_did)
    async with net.running(a, b):
        assert a.ready["did"] == a.did
        # They find each other through bootstrap; peers list shows it on both sides.
        await wait_for_peer(net, b, a.did)
        await wait_for_peer(net, a, b.did)

        # b's user calling a's node: refused, with the reason, not a timeout.
        refused = await net.cli(
            b, "actor", "invoke", "/dms/node/status", "--to", a.did, check=False
        )
        assert refused.returncode == 1
        message = refused.stderr.decode()
        assert f"no delegation for /dms/node/status from {b.user_did}" in message
        assert len(message.strip().splitlines()) == 1

        # a's node grants b's user /dms/node; b's user keeps it as a provide anchor.
        await net.cli(b, "cap", "new", "user")
        grant = await net.cli(
            a, "cap", "grant", "-c", "dms", "--to", b.user_did, "--cmd", "/dms/node"
        )
        await net.cli(b, "cap", "anchor", "-c", "user", "--provide", grant.stdout.decode().strip())
        status = await cli_json(net, b, "actor", "invoke", "/dms/node/status", "--to", a.did)
        assert isinstance(status, dict)
        assert status["did"] == a.did
        # The grant covers /dms/node only.
        widened = await net.cli(b, "actor", "invoke", "/dms/cap/list", "--to", a.did, check=False)
        assert widened.returncode == 1
        assert "Unauthorized" in widened.stderr.decode()

        codes = [await net.stop(node) for node in (b, a)]
    assert codes == [0, 0]


async def test_refusals_at_start(tmp_path: Path) -> None:
    net = LocalNet(tmp_path)
    node = net.prepare("n")
    # A taken p2p port.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", node.p2p_port))
        squatter.listen()
        taken = await net.cli(node, "run", check=False)
    assert taken.returncode == 1
    lines = taken.stderr.decode().strip().splitlines()
    assert lines[-1].startswith("Error: cannot listen on /ip4/127.0.0.1/tcp/")
    assert "Traceback" not in taken.stderr.decode()
    # A taken API port.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", node.api_port))
        squatter.listen()
        taken = await net.cli(node, "run", check=False)
    assert taken.returncode == 1
    assert "Traceback" not in taken.stderr.decode()
    assert str(node.api_port) in taken.stderr.decode().strip().splitlines()[-1]
    # A missing key.
    (node.home / "key" / "dms.json").unlink()
    missing = await net.cli(node, "run", check=False)
    assert missing.returncode == 1
    assert "no key named 'dms'" in missing.stderr.decode()
    # A bad config.
    node.config_path.write_text('{"rest": {"port": "nine"}}')
    bad = await net.cli(node, "run", check=False)
    assert bad.returncode == 1
    assert "'rest.port' must be an integer" in bad.stderr.decode()


async def test_sigint_stops_cleanly(tmp_path: Path) -> None:
    net = LocalNet(tmp_path)
    node = net.prepare("n")
    async with net.running(node):
        code = await net.stop(node, signal.SIGINT)
    assert code == 0
