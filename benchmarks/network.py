"""Actor messaging between two OS processes over loopback TCP, beside what it cannot beat.

``python -m benchmarks.network`` starts a second process (``--serve``) holding two actor
systems (one verifying every envelope, one trusting its sessions) and a raw echo server, then
measures from this process, in interleaved rounds (order rotated each round, medians reported):

- ``tcp_invoke_signed`` / ``tcp_invoke_session``: sequential invoke round trips per second;
- ``tcp_pipelined_signed`` / ``tcp_pipelined_session``: one-way ``send``s, many in flight, rated
  at the receiver (messages handled per second between the first and the last);
- ``raw_tcp_echo_pipelined``: the same number of messages of the same size, each written with
  its own ``send_all`` as a 4-byte length plus payload, echoed one by one by the other process
  (parsed from 64 KiB reads), counted back here: trio and loopback TCP with nothing on top;
- ``pynacl_verify``: single-core Ed25519 verifications per second of an envelope's signed bytes;
- ``ratio_session_raw`` (goal >= 0.5) and ``ratio_signed_verify`` (goal >= 0.6): medians of the
  per-round ratios.

Results are JSON lines (``benchmarks._measure.emit``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nacl.signing
import trio

from nuactor import (
    Actor,
    ActorSystem,
    AdmissionPolicy,
    Budget,
    Context,
    Envelope,
    Handle,
    Identity,
    SystemConfig,
)
from nuactor._envelope import SIGNING_CONTEXT
from nuactor.transport import Network, NetworkConfig

from ._measure import emit

SEEDS = {
    "server_signed": bytes([1]) * 32,
    "server_session": bytes([2]) * 32,
    "client_signed": bytes([3]) * 32,
    "client_session": bytes([4]) * 32,
}
TCP = "/ip4/127.0.0.1/tcp/0"
BODY = {"seq": 0, "payload": "x" * 64}
ROUNDS = 7
INVOKES = 1_500
PIPELINED = 20_000
VERIFIES = 4_000
UNLIMITED = AdmissionPolicy(default=Budget(rate=1e12, burst=1e12, max_concurrent=4096))


class AllowAll:
    """The benchmark measures the transport and the envelope path, not authorisation."""

    def authorize(self, envelope: Envelope) -> None:
        return None

    def proofs_for(self, subject: str, cmd: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        return (), ()


def system_config(trust_sessions: bool) -> SystemConfig:
    return SystemConfig(trust_sessions=trust_sessions, admission=UNLIMITED)


# --- the serving process ----------------------------------------------------------------------------


class Sink(Actor):
    """Counts ``/count`` messages and says when the first and the last were handled."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.first = self.last = 0.0
        self.add_behaviour("/echo", self.echo)
        self.add_behaviour("/count", self.counted)
        self.add_behaviour("/bench/arm", self.arm)
        self.add_behaviour("/bench/result", self.result)

    async def echo(self, ctx: Context, body: Any) -> Any:
        return body

    async def counted(self, ctx: Context, body: Any) -> None:
        self.count += 1
        self.last = time.perf_counter()
        if self.count == 1:
            self.first = self.last

    async def arm(self, ctx: Context, body: Any) -> None:
        self.count = 0

    async def result(self, ctx: Context, body: Any) -> dict[str, float]:
        # Handled after every /count sent before it: one actor's messages are handled in order.
        return {"count": self.count, "seconds": self.last - self.first}


async def echo_lengths(stream: trio.SocketStream) -> None:
    """Echo 4-byte-length-prefixed messages one by one."""
    buffer = bytearray()
    while data := await stream.receive_some(65536):
        buffer += data
        offset = 0
        while len(buffer) - offset >= 4:
            end = offset + 4 + int.from_bytes(buffer[offset : offset + 4], "big")
            if end > len(buffer):
                break
            await stream.send_all(bytes(buffer[offset:end]))
            offset = end
        del buffer[:offset]


async def serve() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        nursery.start_soon(trio.serve_listeners, echo_lengths, listeners)
        ready: dict[str, Any] = {"echo_port": listeners[0].socket.getsockname()[1]}
        for name, trusted in (("server_signed", False), ("server_session", True)):
            identity = Identity.from_seed(SEEDS[name])
            network = Network(identity, NetworkConfig(listen=(TCP,)))
            system = ActorSystem(
                identity, AllowAll(), transports=[network], config=system_config(trusted)
            )
            await nursery.start(run_system, system)
            ready[name] = f"{network.addresses[0]}/p2p/{identity.did}"
        print(json.dumps(ready), flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes our stdin
        nursery.cancel_scope.cancel()


async def run_system(system: ActorSystem, *, task_status: trio.TaskStatus[None]) -> None:
    async with system:
        await system.spawn(Sink(), name="root")
        task_status.started()
        await trio.sleep_forever()


# --- the measuring process ---------------------------------------------------------------------------


class Client:
    def __init__(self, system: ActorSystem, server: Handle) -> None:
        self.system = system
        self.server = server

    async def invokes(self) -> float:
        invoke, server = self.system.invoke, self.server
        start = time.perf_counter()
        for _ in range(INVOKES):
            await invoke(server, "/echo", BODY)
        return INVOKES / (time.perf_counter() - start)

    async def pipelined(self) -> float:
        send, server = self.system.send, self.server
        await self.system.invoke(server, "/bench/arm")
        for _ in range(PIPELINED):
            await send(server, "/count", BODY)
        result = await self.system.invoke(server, "/bench/result", timeout=120)
        if result["count"] != PIPELINED:
            raise RuntimeError(f"the receiver handled {result['count']} of {PIPELINED} messages")
        return float((PIPELINED - 1) / result["seconds"])


async def raw_echo(port: int, size: int) -> float:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    message = size.to_bytes(4, "big") + b"r" * size
    done = trio.Event()

    async def count_echoes() -> None:
        buffer = bytearray()
        seen = 0
        while seen < PIPELINED:
            data = await stream.receive_some(65536)
            if not data:
                raise RuntimeError("the echo server hung up")
            buffer += data
            whole = len(buffer) // len(message)
            seen += whole
            del buffer[: whole * len(message)]
        done.set()

    async with stream, trio.open_nursery() as nursery:
        start = time.perf_counter()
        nursery.start_soon(count_echoes)
        for _ in range(PIPELINED):
            await stream.send_all(message)
        await done.wait()
        return PIPELINED / (time.perf_counter() - start)


def verify_rate(sample: Envelope, signer: Identity) -> float:
    assert sample.signed_body is not None and sample.signature is not None
    key = nacl.signing.VerifyKey(signer.public_key)
    signed, signature = SIGNING_CONTEXT + sample.signed_body, sample.signature
    start = time.perf_counter()
    for _ in range(VERIFIES):
        key.verify(signed, signature)
    return VERIFIES / (time.perf_counter() - start)


async def measure(ready: dict[str, Any]) -> None:
    clients: dict[str, Client] = {}
    async with trio.open_nursery() as nursery:
        for mode in ("signed", "session"):
            identity = Identity.from_seed(SEEDS[f"client_{mode}"])
            network = Network(identity, NetworkConfig(listen=()))
            system = ActorSystem(
                identity, AllowAll(), transports=[network], config=system_config(mode == "session")
            )
            await nursery.start(run_client, system)
            did = await network.connect(ready[f"server_{mode}"])
            clients[mode] = Client(system, Handle(did, "root"))
        signer = Identity.from_seed(SEEDS["client_signed"])
        sample = Envelope.build(
            sender=Handle(signer.did, "system"),
            to=clients["signed"].server,
            beh="/count",
            body=BODY,
        ).sign(signer)
        size = len(sample.encode()) + 1  # the frame: a kind byte and the envelope

        subjects: dict[str, Callable[[], Awaitable[float]]] = {
            "tcp_invoke_signed": clients["signed"].invokes,
            "tcp_invoke_session": clients["session"].invokes,
            "tcp_pipelined_signed": clients["signed"].pipelined,
            "tcp_pipelined_session": clients["session"].pipelined,
            "raw_tcp_echo_pipelined": lambda: raw_echo(ready["echo_port"], size),
        }
        for subject in subjects.values():  # warm up: connections, caches, allocators
            await subject()
        rates: dict[str, list[float]] = {name: [] for name in [*subjects, "pynacl_verify"]}
        session_raw, signed_verify = [], []
        names = list(subjects)
        for round_ in range(ROUNDS):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                rates[name].append(await subjects[name]())
            rates["pynacl_verify"].append(verify_rate(sample, signer))
            session_raw.append(
                rates["tcp_pipelined_session"][-1] / rates["raw_tcp_echo_pipelined"][-1]
            )
            signed_verify.append(rates["tcp_pipelined_signed"][-1] / rates["pynacl_verify"][-1])
        for name, values in rates.items():
            emit(name, statistics.median(values), "ops/s")
        emit("ratio_session_raw", statistics.median(session_raw), "ratio")
        emit("ratio_signed_verify", statistics.median(signed_verify), "ratio")
        nursery.cancel_scope.cancel()


async def run_client(system: ActorSystem, *, task_status: trio.TaskStatus[None]) -> None:
    async with system:
        task_status.started()
        await trio.sleep_forever()


ROOT = Path(__file__).resolve().parents[1]


async def main() -> None:
    root = ROOT
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [sys.executable, "-m", "benchmarks.network", "--serve"]
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=root
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(4096)
                if not chunk:
                    raise RuntimeError("the serving process exited before it was ready")
                line += chunk
        await measure(json.loads(line))
    finally:
        if process.stdin is not None:
            await trio.aclose_forcefully(process.stdin)
        with trio.move_on_after(5) as scope:
            scope.shield = True
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="run the serving side")
    if parser.parse_args().serve:
        trio.run(serve)
    else:
        trio.run(main)
