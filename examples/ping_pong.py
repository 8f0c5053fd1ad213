"""Ping-pong between two actor systems, authorised by a real UCAN delegation.

Alice's system hosts a ``pong`` actor. Alice grants Bob ``/pingpong``; Bob keeps the grant as a
provide anchor, so every envelope he sends cites it. Without the grant, Alice refuses him.

Run it: ``python examples/ping_pong.py [ROUNDS]``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import trio

from nuactor import (
    Actor,
    ActorSystem,
    Context,
    Identity,
    MemoryNetwork,
    TrustContext,
    behaviour,
)
from nuactor.errors import Unauthorized


class Pong(Actor):
    @behaviour("/pingpong/ping")
    async def ping(self, ctx: Context, body: Any) -> dict[str, Any]:
        return {"pong": body["ping"], "from": ctx.system.did}


async def main(rounds: int) -> None:
    alice, bob = Identity.generate(), Identity.generate()
    alice_trust, bob_trust = TrustContext(alice), TrustContext(bob)
    network = MemoryNetwork()

    async with (
        ActorSystem(alice, alice_trust, transports=[network.transport("alice")]) as alice_system,
        ActorSystem(bob, bob_trust, transports=[network.transport("bob")]) as bob_system,
    ):
        pong = await alice_system.spawn(Pong, name="pong")

        try:
            await bob_system.invoke(pong, "/pingpong/ping", {"ping": 0})
        except Unauthorized as refused:
            print(f"before the grant, alice refuses: {refused}")

        grant = alice_trust.grant(bob.did, "/pingpong")
        bob_trust.add_provide(grant)
        print(f"alice granted bob /pingpong ({grant.cid})")

        start = time.perf_counter()
        for n in range(1, rounds + 1):
            reply = await bob_system.invoke(pong, "/pingpong/ping", {"ping": n})
            assert reply["pong"] == n
        elapsed = time.perf_counter() - start
        print(
            f"{rounds} signed, authorised round trips in {elapsed:.2f} s "
            f"({rounds / elapsed:,.0f}/s); alice verified "
            f"{alice_trust.signature_verifications} delegation signature(s) in all"
        )


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
