"""A minimal nuactor node in its own OS process, for the multi-process tests and benchmark.

    python tests/e2e/node.py --seed <64 hex> --listen /ip4/127.0.0.1/tcp/0 [--listen ...]
        [--bootstrap <multiaddr>]... [--allow <did>]... [--trust-sessions] [--backoff-max S]

Prints one JSON line, ``{"did": ..., "addresses": [...]}``, once it listens, then serves until
SIGTERM/SIGINT (clean exit) or SIGKILL. Its actor ``root`` has ``/echo`` (returns the body),
``/call`` (invokes ``{"did", "beh", "body"}`` on another node's ``root`` and returns the reply)
and ``/peers`` (the peer table). Authorisation: a stand-in that admits the ``--allow`` DIDs (the
real ``TrustContext`` is not in the tree yet).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

import trio

from nuactor import Actor, ActorSystem, Context, Envelope, Handle, Identity, SystemConfig
from nuactor.errors import Unauthorized
from nuactor.transport import Network, NetworkConfig


class AllowListed:
    """Admits calls from a fixed set of DIDs: a stand-in for a UCAN trust context."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed

    def authorize(self, envelope: Envelope) -> None:
        if envelope.sender.did not in self.allowed:
            raise Unauthorized(f"{envelope.sender.did} is not on this node's allow list")

    def proofs_for(self, subject: str, cmd: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        return (), ()


def root_actor(network: Network) -> Actor:
    actor = Actor()

    @actor.on("/echo")
    async def echo(ctx: Context, body: Any) -> Any:
        return body

    @actor.on("/call", concurrent=True)
    async def call(ctx: Context, body: Any) -> Any:
        return await ctx.invoke(Handle(body["did"], "root"), body["beh"], body.get("body"))

    @actor.on("/peers")
    async def peers(ctx: Context, body: Any) -> Any:
        return [[r.did, r.connected, list(r.addresses)] for r in network.peers()]

    return actor


async def main(args: argparse.Namespace) -> None:
    identity = Identity.from_seed(bytes.fromhex(args.seed))
    network = Network(
        identity,
        NetworkConfig(
            listen=tuple(args.listen),
            bootstrap=tuple(args.bootstrap),
            backoff_initial=0.1,
            backoff_max=args.backoff_max,
        ),
    )
    trust = AllowListed({identity.did, *args.allow})
    config = SystemConfig(trust_sessions=args.trust_sessions)
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with ActorSystem(identity, trust, transports=[network], config=config) as system:
            await system.spawn(root_actor(network), name="root")
            print(json.dumps({"did": identity.did, "addresses": network.addresses}), flush=True)
            async for _ in signals:
                break


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", required=True)
    parser.add_argument("--listen", action="append", default=[])
    parser.add_argument("--bootstrap", action="append", default=[])
    parser.add_argument("--allow", action="append", default=[])
    parser.add_argument("--trust-sessions", action="store_true")
    parser.add_argument("--backoff-max", type=float, default=1.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    trio.run(main, parse(sys.argv[1:]))
