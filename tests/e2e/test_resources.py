"""Onboarding and resources on a running daemon, through the CLI, including every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from dmsnode.localnet import LocalNet, LocalNode

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
