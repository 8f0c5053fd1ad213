"""Systems in separate OS processes, over real loopback sockets, on both transports.

This process runs one node (Alice); ``tests/e2e/node.py`` runs the others. Every child is
killed in a ``finally``, whatever happens. Authorisation is by real UCAN delegation chains: each
node accepts the organisation ``ORG`` for ``/e2e`` (a require anchor it issued), and ``ORG``
grants each member ``/e2e`` (a powerline the member proves with): node X calls node Y with the
chain Y -> ORG -> X.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from nuactor import Actor, ActorSystem, Context, Handle, Identity, SystemConfig, TrustContext
from nuactor.errors import NuactorError, Unauthorized
from nuactor.transport import Network, NetworkConfig

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("node.py")
SEEDS = {name: bytes([100 + n]) * 32 for n, name in enumerate(["alice", "bob", "carol"])}
DIDS = {name: Identity.from_seed(seed).did for name, seed in SEEDS.items()}
TCP = "/ip4/127.0.0.1/tcp/0"
WS = "/ip4/127.0.0.1/tcp/0/ws"
BACKOFF_MAX = 1.0
ORG = Identity.from_seed(bytes([120]) * 32)


def credentials(name: str) -> tuple[str, str]:
    """The node's require anchor (it accepts ORG for /e2e) and ORG's grant to it, as text."""
    node = Identity.from_seed(SEEDS[name])
    require = TrustContext(node).grant(ORG.did, "/e2e")
    provide = TrustContext(ORG).grant(node.did, "/e2e", powerline=True)
    return TrustContext.bundle_text([require]), TrustContext.bundle_text([provide])


@dataclass
class Child:
    did: str
    addresses: list[str]
    process: trio.Process


@asynccontextmanager
async def child(name: str, *listen: str, bootstrap: tuple[str, ...] = ()) -> AsyncIterator[Child]:
    """Start ``node.py`` as ``name``; yield once it listens; kill it on the way out."""
    command = [sys.executable, str(SCRIPT), "--seed", SEEDS[name].hex()]
    command += [arg for address in listen for arg in ("--listen", address)]
    command += [arg for address in bootstrap for arg in ("--bootstrap", address)]
    require, provide = credentials(name)
    command += ["--require", require, "--provide", provide]
    command += ["--backoff-max", str(BACKOFF_MAX)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(20):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError(f"{name} exited before it was ready: {process.returncode}")
                line += chunk
        ready = json.loads(line)
        assert ready["did"] == DIDS[name]
        yield Child(ready["did"], ready["addresses"], process)
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(10) as scope:
            scope.shield = True
            await process.wait()


@asynccontextmanager
async def alice(**options: Any) -> AsyncIterator[tuple[ActorSystem, Network]]:
    identity = Identity.from_seed(SEEDS["alice"])
    network = Network(identity, NetworkConfig(listen=(TCP, WS), backoff_initial=0.1, **options))
    trust = TrustContext(identity)
    require, provide = credentials("alice")
    trust.add_require(require)
    trust.add_provide(provide)
    actor = Actor()

    @actor.on("/e2e/echo")
    async def echo(ctx: Context, body: Any) -> Any:
        return {"alice": body}

    async with ActorSystem(identity, trust, transports=[network], config=SystemConfig()) as system:
        await system.spawn(actor, name="root")
        yield system, network


async def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # noqa: ASYNC110 - the peer table has no events to wait on
            await trio.sleep(0.02)


async def call(system: ActorSystem, did: str, beh: str, body: Any = None) -> Any:
    return await system.invoke(Handle(did, "root"), beh, body, timeout=10)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_two_processes_invoke_each_other(transport: str) -> None:
    async with child("bob", WS if transport == "ws" else TCP) as bob, alice() as (system, network):
        (address,) = bob.addresses
        assert address.endswith("/ws") == (transport == "ws")
        await network.connect(f"{address}/p2p/{bob.did}")
        assert await call(system, bob.did, "/e2e/echo", [1, 2]) == [1, 2]
        # Bob calls back into this process over the same session.
        request = {"did": system.did, "beh": "/e2e/echo", "body": "from bob"}
        assert await call(system, bob.did, "/e2e/call", request) == {"alice": "from bob"}
        with pytest.raises(Unauthorized, match="/private/echo"):
            await call(system, bob.did, "/private/echo")  # ORG was granted /e2e only


async def test_three_processes_with_bootstrap_and_peer_exchange() -> None:
    async with child("bob", TCP, WS) as bob:
        bob_tcp, bob_ws = bob.addresses
        async with (
            child("carol", WS, bootstrap=(f"{bob_ws}/p2p/{bob.did}",)) as carol,
            alice(bootstrap=(f"{bob_tcp}/p2p/{bob.did}",)) as (system, network),
        ):
            # Alice learns Carol from Bob (peer exchange) and reaches her.
            await eventually(
                lambda: any(r.did == carol.did and r.connected for r in network.peers())
            )
            assert await call(system, carol.did, "/e2e/echo", "hi carol") == "hi carol"
            # Bob relays a call to Carol; Carol calls Alice.
            via_bob = {"did": carol.did, "beh": "/e2e/echo", "body": "via bob"}
            assert await call(system, bob.did, "/e2e/call", via_bob) == "via bob"
            back = {"did": system.did, "beh": "/e2e/echo", "body": "from carol"}
            assert await call(system, carol.did, "/e2e/call", back) == {"alice": "from carol"}
            peers = {
                did: connected for did, connected, _ in await call(system, bob.did, "/e2e/peers")
            }
            assert peers == {system.did: True, carol.did: True}


async def test_a_killed_and_restarted_peer_is_reconnected_to() -> None:
    async with child("bob", TCP) as bob:
        (address,) = bob.addresses
        pinned = f"{address}/p2p/{bob.did}"
        async with alice(bootstrap=(pinned,), backoff_max=BACKOFF_MAX) as (system, network):
            assert await call(system, bob.did, "/e2e/echo", 1) == 1
            bob.process.send_signal(signal.SIGKILL)
            await bob.process.wait()
            await eventually(lambda: not any(r.connected for r in network.peers()))
            await trio.sleep(2 * BACKOFF_MAX)  # several failed redials: the back-off is capped
            async with child("bob", address) as again:  # same key, same port
                assert again.addresses == [address]
                restarted = trio.current_time()
                while True:
                    try:
                        reply = await call(system, bob.did, "/e2e/echo", 2)
                        break
                    except NuactorError:
                        await trio.sleep(0.02)
                assert reply == 2
                assert trio.current_time() - restarted <= BACKOFF_MAX + 1.0
