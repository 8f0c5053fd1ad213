"""Several ``dmsnode run`` processes on loopback, each with its own home in one directory.

Used by ``dmsnode demo`` and by the end-to-end tests: real daemons, real sockets, real key
files, all confined to the directory given and stopped by PID when done.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, final

import psutil  # type: ignore[import-untyped]  # no stubs in the dev dependencies
import trio

from nuactor import Identity, Keystore, TrustContext

from .client import NodeClient
from .errors import DmsError
from .node import trust_path

__all__ = ["LocalNet", "LocalNode", "small_share"]

READY_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 15.0


def small_share() -> dict[str, Any]:
    """A small share to onboard (the body of ``/dms/node/onboarding/onboard``): one core, the
    least RAM onboarding allows (10% of the machine, rounded up to 256 MiB), 2 GiB of disk."""
    step = 256 << 20
    ram = -(-psutil.virtual_memory().total // 10 // step) * step
    return {"cpu_cores": 1, "ram": int(ram), "disk": "2GiB"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@final
@dataclass
class LocalNode:
    """One node's home (keys, capability contexts, config, work dir) and, once started, its
    process and the addresses it reported."""

    name: str
    home: Path
    config_path: Path
    did: str
    user_did: str
    p2p_port: int
    api_port: int
    process: trio.Process | None = None
    ready: dict[str, Any] = field(default_factory=dict)
    log_path: Path | None = None
    #: The node's ``dms`` and ``user`` identities (kept from when their keys were made).
    identity: Identity | None = field(default=None, repr=False)
    user: Identity | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """The node's p2p multiaddr, with its DID pinned."""
        return f"/ip4/127.0.0.1/tcp/{self.p2p_port}/p2p/{self.did}"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


@final
class LocalNet:
    """Prepare, start and stop local nodes under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        passphrase: str = "local-demo-passphrase",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.passphrase = passphrase
        self.extra_env = dict(extra_env or {})
        self.nodes: list[LocalNode] = []

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "DMS_PASSPHRASE": self.passphrase, "HOME": str(self.root)}
        env.pop("BOOTSTRAP_PEERS", None)
        env.update(self.extra_env)
        return env

    def prepare(
        self,
        name: str,
        *,
        bootstrap: Sequence[LocalNode] = (),
        config: dict[str, Any] | None = None,
    ) -> LocalNode:
        """A home for node ``name`` with fresh ``dms`` and ``user`` keys and a config file."""
        home = self.root / name
        keystore = Keystore(home / "key")
        node = keystore.create("dms", self.passphrase)
        user = keystore.create("user", self.passphrase)
        p2p_port, api_port = free_port(), free_port()
        document: dict[str, Any] = {
            "general": {
                "user_dir": str(home),
                "work_dir": str(home / "work"),
                "data_dir": str(home / "data"),
            },
            "rest": {"addr": "127.0.0.1", "port": api_port},
            "p2p": {
                "listen_address": [f"/ip4/127.0.0.1/tcp/{p2p_port}"],
                "bootstrap_peers": [peer.address for peer in bootstrap],
            },
        }
        for section, values in (config or {}).items():
            document.setdefault(section, {}).update(values)
        config_path = home / "dms_config.json"
        config_path.write_text(json.dumps(document, indent=2))
        local = LocalNode(
            name,
            home,
            config_path,
            node.did,
            user.did,
            p2p_port,
            api_port,
            identity=node,
            user=user,
        )
        self.nodes.append(local)
        return local

    def organise(
        self,
        operator: LocalNode,
        nodes: Sequence[LocalNode],
        grants: Sequence[str] = ("/dms/deployment", "/dms/allocation"),
    ) -> None:
        """Trust as an organisation sets it up (what ``dmsnode cap`` does, done in-process):
        every node anchors ``operator``'s user key as root, and holds the operator's powerline
        grants of ``grants``, so that the nodes may deploy onto one another. Before start."""
        assert operator.user is not None
        org = TrustContext(operator.user)
        for node in nodes:
            assert node.identity is not None
            path = trust_path(node.home)
            trust = (
                TrustContext.load(path, node.identity)
                if path.is_file()
                else TrustContext(node.identity, path=path)
            )
            trust.add_root(operator.user.did)
            for cmd in grants:
                trust.add_provide(org.grant(node.did, cmd, powerline=True, expiration=None))
            trust.save()

    async def call(
        self,
        node: LocalNode,
        beh: str,
        body: Any = None,
        *,
        operator: LocalNode | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Invoke ``beh`` on ``node`` through its REST gateway, signed by ``operator``'s user
        key (default: the node's own user key); the reply, or :class:`RequestRefused`."""
        signer = (operator or node).user
        assert signer is not None
        client = NodeClient(node.api, timeout=timeout + 10)

        def invoke() -> Any:
            envelope = client.envelope(signer, beh, body, reply=True, ttl_ms=int(timeout * 1000))
            return client.invoke(envelope, timeout=timeout)

        return await trio.to_thread.run_sync(invoke)

    def command(self, node: LocalNode, *args: str) -> list[str]:
        """The ``dmsnode`` command line for ``node``'s home."""
        return [
            sys.executable,
            "-m",
            "dmsnode",
            "--config",
            str(node.config_path),
            "--user-dir",
            str(node.home),
            *args,
        ]

    async def wait_for_peers(
        self, node: LocalNode, dids: set[str], *, timeout: float = 30.0
    ) -> None:
        """Wait until ``node`` is connected to every peer in ``dids`` (asked as its own user)."""
        with trio.fail_after(timeout):
            while True:
                peers = await self.call(node, "/dms/node/peers/list")
                if dids <= {p["did"] for p in peers if p["connected"]}:
                    return
                await trio.sleep(0.2)

    async def cli(
        self, node: LocalNode, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a ``dmsnode`` command against ``node``'s home; its output is captured."""
        result = await trio.run_process(
            self.command(node, *args),
            env=self.env,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        if check and result.returncode != 0:
            raise DmsError(
                f"'dmsnode {' '.join(args)}' failed for {node.name}: "
                f"{result.stderr.decode().strip() or result.stdout.decode().strip()}"
            )
        return result

    async def start(self, node: LocalNode, nursery: trio.Nursery) -> LocalNode:
        """Start ``dmsnode run`` for ``node`` and wait for its ready line."""
        node.log_path = node.home / "node.log"
        log = node.log_path.open("ab")
        try:
            process = await trio.lowlevel.open_process(
                self.command(node, "run"), env=self.env, stdout=subprocess.PIPE, stderr=log
            )
        finally:
            log.close()
        node.process = process
        assert process.stdout is not None
        buffer = b""
        with trio.move_on_after(READY_TIMEOUT) as waiting:
            while b"\n" not in buffer:
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    break
                buffer += chunk
        line = buffer.split(b"\n", 1)[0]
        if waiting.cancelled_caught or not line.startswith(b'{"ready"'):
            await self.stop(node)
            raise DmsError(f"node {node.name} did not start: {self.log_tail(node)}")
        node.ready = json.loads(line)["ready"]
        nursery.start_soon(_drain, process.stdout)
        return node

    async def stop(self, node: LocalNode, sig: int = signal.SIGTERM) -> int | None:
        """Stop ``node``'s process by PID (SIGTERM, then SIGKILL past the timeout)."""
        process, node.process = node.process, None
        if process is None:
            return None
        if process.returncode is None:
            process.send_signal(sig)
            with trio.move_on_after(STOP_TIMEOUT):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
        return process.returncode

    def log_tail(self, node: LocalNode, lines: int = 5) -> str:
        if node.log_path is None or not node.log_path.exists():
            return "no log"
        text = node.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "empty log"

    @asynccontextmanager
    async def running(self, *nodes: LocalNode) -> AsyncIterator[list[LocalNode]]:
        """Start ``nodes`` in order; on exit stop every node of this net that still runs."""
        async with trio.open_nursery() as nursery:
            try:
                for node in nodes:
                    await self.start(node, nursery)
                yield list(nodes)
            finally:
                with trio.CancelScope(shield=True):
                    for node in self.nodes:
                        await self.stop(node)
                nursery.cancel_scope.cancel()


async def _drain(stream: trio.abc.ReceiveStream) -> None:
    """Keep reading a child's stdout so it never blocks on a full pipe."""
    while await stream.receive_some(65536):
        pass
