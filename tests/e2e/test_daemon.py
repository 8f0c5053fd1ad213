"""``dmsnode run`` as real processes: discovery, authorised calls, refusals, clean stops."""

from __future__ import annotations

import json
import signal
import socket
import sys
import urllib.request
from pathlib import Path

import pytest
import trio

from dmsnode.localnet import LocalNet, LocalNode

pytestmark = pytest.mark.slow

PLUGIN_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin_hello"


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


async def test_metrics_and_events_of_a_running_node(tmp_path: Path) -> None:
    net = LocalNet(tmp_path)
    a = net.prepare("a")
    b = net.prepare("b", bootstrap=[a])
    await net.cli(a, "cap", "new", "dms")
    await net.cli(a, "cap", "anchor", "-c", "dms", "--root", a.user_did)
    async with net.running(a, b):
        await wait_for_peer(net, a, b.did)
        await net.cli(a, "actor", "invoke", "/dms/node/status")
        refused = await net.cli(
            b, "actor", "invoke", "/dms/node/status", "--to", a.did, check=False
        )
        assert refused.returncode == 1
        metrics = await _get(a.api + "/metrics")
        assert 'dmsnode_peers{state="connected"} 1' in metrics
        assert 'dmsnode_envelopes_total{direction="in"}' in metrics
        assert 'dmsnode_refusals_total{reason="Unauthorized"} 1' in metrics
        assert 'dmsnode_handler_seconds_count{behaviour="/dms/node/status"}' in metrics
        assert (
            'dmsnode_api_requests_total{route="/api/v1/actor/invoke",method="POST",status="200"}'
            in metrics
        )
        events = json.loads(await _get(a.api + "/api/v1/events"))
        kinds = [event["kind"] for event in events["events"]]
        assert "node.started" in kinds
    # The events table is in the node's SQLite file, and survives the node.
    assert (a.home / "work" / "dms.sqlite3").is_file()


async def _get(url: str) -> str:
    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read().decode())

    return await trio.to_thread.run_sync(fetch)


async def test_an_installed_plugin_is_served_and_checked(tmp_path: Path) -> None:
    """pip-install examples/plugin_hello into a directory on the node's path, restart: the
    behaviour is there, behind the same capability checks as built-in ones."""
    site = tmp_path / "site"
    example = PLUGIN_EXAMPLE
    installed = await trio.run_process(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(example),
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr.decode()
    net = LocalNet(tmp_path / "net", extra_env={"PYTHONPATH": str(site)})
    (tmp_path / "net").mkdir()
    a = net.prepare("a")
    b = net.prepare("b", bootstrap=[a])
    for node in (a, b):
        await net.cli(node, "cap", "new", "dms")
        await net.cli(node, "cap", "anchor", "-c", "dms", "--root", node.user_did)
    async with net.running(a, b):
        greeting = await cli_json(
            net, a, "actor", "invoke", "/plugins/hello/greet", "--body", '{"name": "ada"}'
        )
        assert greeting == {"greeting": "hello ada", "node": a.did, "caller": a.user_did}
        status = await cli_json(net, a, "actor", "invoke", "/dms/node/status")
        assert isinstance(status, dict)
        assert status["plugins"] == [
            {"name": "hello", "behaviours": ["/plugins/hello/greet"], "error": None}
        ]
        # Another principal without a delegation is refused, as for any behaviour.
        await wait_for_peer(net, b, a.did)
        refused = await net.cli(
            b, "actor", "invoke", "/plugins/hello/greet", "--to", a.did, check=False
        )
        assert refused.returncode == 1
        assert "no delegation for /plugins/hello/greet" in refused.stderr.decode()
