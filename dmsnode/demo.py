"""The demonstration behind ``dmsnode demo``: two nodes, one signed message, verified."""

from __future__ import annotations

from collections.abc import Callable

import trio

from nuactor import Envelope, Handle, Identity


async def run_demo(say: Callable[[str], object]) -> None:
    """Two nodes in one process: ``alice`` signs an envelope, ``bob`` receives and verifies it.

    The bytes travel through a Trio memory channel standing in for the network; what ``bob``
    receives is only bytes, exactly what a socket would deliver.
    """
    alice, bob = Identity.generate(), Identity.generate()
    say(f"node alice: {alice.did}")
    say(f"node bob:   {bob.did}")
    wire_send, wire_receive = trio.open_memory_channel[bytes](1)
    done = trio.Event()

    async def node_bob() -> None:
        async with wire_receive:
            data = await wire_receive.receive()
        envelope = Envelope.decode(data)
        say(
            f"bob received {len(data)} bytes: {envelope.beh} from {envelope.sender.did}, "
            f"signature verified, body {envelope.body!r}"
        )
        done.set()

    async def node_alice() -> None:
        envelope = Envelope.build(
            sender=Handle(alice.did, "root"),
            to=Handle(bob.did, "root"),
            beh="/public/hello",
            body={"greeting": "hello from alice"},
        ).sign(alice)
        data = envelope.encode()
        say(f"alice sends {envelope.beh} to bob ({len(data)} bytes, id {envelope.id.hex()})")
        async with wire_send:
            await wire_send.send(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(node_bob)
        nursery.start_soon(node_alice)
    assert done.is_set()
    say("done: both nodes stopped")
