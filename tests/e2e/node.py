"""A minimal nuactor node in its own OS process, for the multi-process tests and benchmark.

    python tests/e2e/node.py --seed <64 hex> --listen /ip4/127.0.0.1/tcp/0 [--listen ...]
        [--bootstrap <multiaddr>]... [--require <token>]... [--provide <bundle>]...
        [--trust-sessions] [--backoff-max S]

Prints one JSON line, ``{"did": ..., "addresses": [...]}``, once it listens, then serves until
SIGTERM/SIGINT (clean exit) or SIGKILL. Its actor ``root`` has ``/e2e/echo`` (returns the body),
``/e2e/call`` (invokes ``{"did", "beh", "body"}`` on another node's ``root`` and returns the
reply), ``/e2e/peers`` (the peer table) and ``/private/echo`` (no one is granted it).
Authorisation is a real :class:`~nuactor.TrustContext`: ``--require`` anchors (delegations this
node issued, say to an organisation) and ``--provide`` chains (what this node was granted).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any

import trio

from nuactor import Actor, ActorSystem, Context, Handle, Identity, SystemConfig, TrustContext
from nuactor.transport import Network, NetworkConfig


def root_actor(network: Network) -> Actor:
    actor = Actor()

    @actor.on("/e2e/echo")
    @actor.on("/private/echo")
    async def echo(ctx: Context, body: Any) -> Any:
        return body

    @actor.on("/e2e/call", concurrent=True)
    async def call(ctx: Context, body: Any) -> Any:
        return await ctx.invoke(Handle(body["did"], "root"), body["beh"], body.get("body"))

    @actor.on("/e2e/peers")
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
    trust = TrustContext(identity)
    for token in args.require:
        trust.add_require(token)
    for bundle in args.provide:
        trust.add_provide(bundle)
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
    parser.add_argument("--require", action="append", default=[])
    parser.add_argument("--provide", action="append", default=[])
    parser.add_argument("--trust-sessions", action="store_true")
    parser.add_argument("--backoff-max", type=float, default=1.0)
    return parser.parse_args(argv)


if __name__ == "__main__":
    trio.run(main, parse(sys.argv[1:]))
