"""Onboarding and resources on a running daemon, through the CLI, including every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from dmsnode.localnet import LocalNet, LocalNode
from dmsnode.resources import Ledger, PortRequest, Resources
from dmsnode.store import STORE_FILENAME, open_store

pytestmark = pytest.mark.slow

GIB = 1 << 30


async def owned_node(net: LocalNet) -> LocalNode:
    node = net.prepare("n")
    await net.cli(node, "cap", "new", "dms")
    await net.cli(node, "cap", "anchor", "-c", "dms", "--root", node.user_did)
    return node


async def refused(net: LocalNet, node: LocalNode, *args: str) -> str:
    result = await net.cli(node, *args, check=False)
    assert result.returncode == 1, result.stdout
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


async def test_onboarding_on_a_running_node(tmp_path: Path) -> None:
    net = LocalNet(tmp_path)
    node = await owned_node(net)
    cores = psutil.cpu_count() or 1
    ram = psutil.virtual_memory().total
    async with net.running(node):
        # Nothing is onboarded yet.
        status = json.loads((await net.cli(node, "resources", "--json")).stdout)
        assert status is None
        # Every refusal names the limit it broke.
        assert "minimum of 1 core" in await refused(
            net, node, "onboard", "--cpu-cores", "0.5", "--ram", "4GiB", "--disk", "1GiB"
        )
        assert f"{cores}" in await refused(
            net, node, "onboard", "--cpu-cores", str(cores + 1), "--ram", "4GiB", "--disk", "1GiB"
        )
        too_much = f"{int(ram * 0.95)}B"
        assert "90%" in await refused(
            net, node, "onboard", "--cpu-cores", "1", "--ram", too_much, "--disk", "1GiB"
        )
        assert "10%" in await refused(
            net, node, "onboard", "--cpu-cores", "1", "--ram", "1MiB", "--disk", "1GiB"
        )
        assert "free in the work directory" in await refused(
            net, node, "onboard", "--cpu-cores", "1", "--ram", "4GiB", "--disk", "100000TiB"
        )
        assert "not on this machine" in await refused(
            net,
            node,
            "onboard",
            "--cpu-cores",
            "1",
            "--ram",
            "4GiB",
            "--disk",
            "1GiB",
            "--gpus",
            "0",
        )
        # A good share.
        done = await net.cli(node, "onboard", "--cpu-cores", "1", "--ram", "4GiB", "--disk", "1GiB")
        assert "ram:   4 GiB" in done.stdout.decode()
        onboarded = json.loads((await net.cli(node, "resources", "onboarded", "--json")).stdout)
        assert onboarded["cpu_cores"] == 1
        assert onboarded["ram"] == 4 * GIB
        assert onboarded["disk"] == GIB
        free = json.loads((await net.cli(node, "resources", "free", "--json")).stdout)
        assert free == onboarded
        hardware = json.loads((await net.cli(node, "resources", "hardware", "--json")).stdout)
        assert hardware["resources"]["cpu_cores"] == cores
        assert hardware["resources"]["ram"] == ram
        usage = json.loads((await net.cli(node, "resources", "usage", "--json")).stdout)
        assert 0 < usage["ram_used"] <= usage["ram_total"]
        human = (await net.cli(node, "resources", "hardware")).stdout.decode()
        assert "disk free:" in human
        await net.stop(node)

    # The onboarding survives a restart of the daemon.
    async with net.running(node):
        again = json.loads((await net.cli(node, "resources", "onboarded", "--json")).stdout)
        assert again == onboarded
        assert "offboarded" in (await net.cli(node, "offboard")).stdout.decode()
        assert json.loads((await net.cli(node, "resources", "--json")).stdout) is None


async def test_offboarding_with_running_allocations(tmp_path: Path) -> None:
    """An allocation booked in the node's own SQLite file (as the deployment behaviours will)
    makes 'offboard' refuse, until --force, which releases it and says so."""
    net = LocalNet(tmp_path)
    node = await owned_node(net)
    async with net.running(node):
        await net.cli(node, "onboard", "--cpu-cores", "1", "--ram", "4GiB", "--disk", "1GiB")
        async with open_store(node.home / "work" / STORE_FILENAME) as store:
            ledger = await Ledger.open(store)
            share = Resources(cpu_cores=0.5, ram=GIB, disk=GIB // 2)
            await ledger.commit("web-1", share, PortRequest(), ttl=60)
            await ledger.allocate("web-1")
        allocated = json.loads((await net.cli(node, "resources", "allocated", "--json")).stdout)
        assert [a["alloc_id"] for a in allocated["allocations"]] == ["web-1"]
        free = json.loads((await net.cli(node, "resources", "free", "--json")).stdout)
        assert free["cpu_cores"] == 0.5
        # Onboarding below what is allocated is refused, naming what is in use.
        assert "allocated" in await refused(
            net, node, "onboard", "--cpu-cores", "1", "--ram", "4GiB", "--disk", "100MiB"
        )
        message = await refused(net, node, "offboard")
        assert "web-1" in message
        assert "offboard with force" in message
        forced = await net.cli(node, "offboard", "--force")
        assert "stopped 1 allocation(s): web-1" in forced.stdout.decode()
        assert json.loads((await net.cli(node, "resources", "--json")).stdout) is None


async def test_the_node_reports_its_executors(tmp_path: Path) -> None:
    net = LocalNet(tmp_path)
    node = await owned_node(net)
    async with net.running(node):
        spec = json.loads((await net.cli(node, "resources", "hardware", "--json")).stdout)
        executors = spec["executors"]
        assert set(executors) >= {"docker", "process", "null"}
        assert executors["null"]["available"] is True
        assert executors["process"]["available"] is True
        if not executors["docker"]["available"]:
            assert "Docker" in executors["docker"]["reason"]  # says why, not a crash
        status = json.loads(
            (await net.cli(node, "actor", "invoke", "/dms/node/status", "--json")).stdout
        )
        assert status["executors"] == executors
