"""The inbound path: size, signature, expiry, replay, admission, authorisation, in that order."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from nuactor import (
    Actor,
    ActorSystem,
    AdmissionPolicy,
    Budget,
    Context,
    Envelope,
    Handle,
    Identity,
    MemoryNetwork,
    ReplyTo,
    SystemConfig,
    behaviour,
    now_ms,
)
from nuactor._frames import envelope_frame, gossip_frame
from nuactor._reply import ReplySlot
from nuactor._system import REPLY_BEHAVIOUR
from nuactor.errors import Busy

from .conftest import AllowAll

CALLER = Identity.from_seed(bytes([11]) * 32)

# Tests take ``autojump_clock`` (pytest-trio only honours a clock passed as a test argument), so
# waiting a second for a reply that must not come costs nothing.

HOST = Identity.from_seed(bytes([12]) * 32)


class Counter(Actor):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.gate: trio.Event | None = None

    @behaviour("/count")
    async def count(self, ctx: Context, body: Any) -> int:
        self.calls += 1
        return self.calls

    @behaviour("/public/count")
    async def public_count(self, ctx: Context, body: Any) -> int:
        return await self.count(ctx, body)

    @behaviour("/hold", concurrent=True)
    async def hold(self, ctx: Context, body: Any) -> None:
        assert self.gate is not None
        await self.gate.wait()


def request(beh: str = "/count", body: Any = None, **kwargs: Any) -> Envelope:
    args: dict[str, Any] = {
        "sender": Handle(CALLER.did, "system"),
        "to": Handle(HOST.did, "root"),
        "beh": beh,
        "body": body,
        "re": ReplyTo(CALLER.did, "system", REPLY_BEHAVIOUR),
    }
    args.update(kwargs)
    return Envelope.build(**args).sign(CALLER)


class Rig:
    """A host system with a Counter, and a caller system whose replies we can wait for."""

    def __init__(self, caller: ActorSystem, host: ActorSystem, counter: Counter) -> None:
        self.caller, self.host, self.counter = caller, host, counter

    def inject(self, envelope: Envelope | bytes, *, session: str | None = CALLER.did) -> ReplySlot:
        slot = ReplySlot(expected_did=HOST.did)
        if isinstance(envelope, Envelope):
            self.caller._pending[envelope.id] = slot
            envelope = envelope.encode()
        self.host.receive_frame(envelope_frame(envelope), session_did=session)
        return slot

    async def answer(self, slot: ReplySlot) -> Any:
        """The reply's outcome, or ``None`` if no reply came within a second."""
        with trio.move_on_after(1):
            return await slot.wait()
        return None


async def rig(config: SystemConfig | None = None) -> Any:
    network = MemoryNetwork()
    counter = Counter()
    caller = ActorSystem(CALLER, AllowAll(), transports=[network.transport()])
    host = ActorSystem(HOST, AllowAll(), transports=[network.transport()], config=config)
    return network, counter, caller, host


@pytest.fixture
async def setup() -> Any:
    _, counter, caller, host = await rig()
    async with caller, host:
        await host.spawn(counter, name="root")
        yield Rig(caller, host, counter)


async def test_a_replay_is_refused_and_not_answered(
    setup: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    envelope = request()
    first = await setup.answer(setup.inject(envelope))
    assert first.ok and first.value == 1
    second = await setup.answer(setup.inject(envelope.encode()))
    assert second is None
    assert setup.counter.calls == 1
    assert setup.host.counters["refused_replay"] == 1


async def test_ten_thousand_replays(setup: Rig, autojump_clock: trio.testing.MockClock) -> None:
    wire = request().encode()
    for _ in range(10_000):
        setup.host.receive_frame(envelope_frame(wire), session_did=CALLER.did)
    await trio.testing.wait_all_tasks_blocked()
    assert setup.counter.calls == 1
    assert setup.host.counters["refused_replay"] == 9_999


async def test_expired_and_future_envelopes_are_refused(
    setup: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    old = request(now=now_ms() - 10 * 60_000, ttl_ms=1_000)
    assert await setup.answer(setup.inject(old)) is None
    future = request(now=now_ms() + 10 * 60_000)
    assert await setup.answer(setup.inject(future)) is None
    assert setup.counter.calls == 0
    assert setup.host.counters["refused_EnvelopeExpired"] == 1
    assert setup.host.counters["refused_EnvelopeNotYetValid"] == 1


async def test_tampered_envelope_is_refused_silently(
    setup: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    envelope = request(body="pay 1")
    wire = bytearray(envelope.encode())
    wire[wire.index(b"pay 1")] = ord("P")
    assert await setup.answer(setup.inject(bytes(wire))) is None
    assert setup.counter.calls == 0
    assert setup.host.counters["refused_BadSignature"] == 1


async def test_oversized_envelope_is_refused_before_decoding(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, counter, caller, host = await rig(SystemConfig(max_envelope_size=2_000))
    async with caller, host:
        await host.spawn(counter, name="root")
        setup = Rig(caller, host, counter)
        assert (await setup.answer(setup.inject(request(body=b"x" * 1_000)))).ok
        assert await setup.answer(setup.inject(request(body=b"x" * 3_000))) is None
        assert host.counters["refused_EnvelopeTooLarge"] == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_frames_never_raise(data: bytes) -> None:
    async def main() -> None:
        async with ActorSystem(HOST, AllowAll()) as host:
            host.receive_frame(data, session_did=None)
            host.receive_frame(envelope_frame(data), session_did=CALLER.did)
            host.receive_frame(gossip_frame(data, 3), session_did=CALLER.did)
            assert host.counters["inbound_errors"] == 0

    trio.run(main)


async def test_a_reply_from_the_wrong_principal_is_ignored(
    setup: Rig, autojump_clock: trio.testing.MockClock
) -> None:
    slot = ReplySlot(expected_did=HOST.did)
    setup.caller._pending[b"\x01" * 16] = slot
    mallory = Identity.generate()
    forged = Envelope.build(
        sender=Handle(mallory.did, "root"),
        to=Handle(CALLER.did, "system"),
        beh=REPLY_BEHAVIOUR,
        body={"ok": "forged"},
        cor=b"\x01" * 16,
    ).sign(mallory)
    setup.caller.receive_frame(envelope_frame(forged.encode()), session_did=mallory.did)
    assert slot.outcome is None
    assert setup.caller.counters["refused_unexpected_reply"] == 1


async def test_rate_limit_per_sender(autojump_clock: trio.testing.MockClock) -> None:
    policy = AdmissionPolicy(default=Budget(rate=1.0, burst=3.0, max_concurrent=100))
    _, counter, caller, host = await rig(SystemConfig(admission=policy))
    async with caller, host:
        await host.spawn(counter, name="root")
        setup = Rig(caller, host, counter)
        outcomes = [await setup.answer(setup.inject(request())) for _ in range(5)]
        assert [o.ok for o in outcomes] == [True, True, True, False, False]
        refusal = outcomes[3]
        assert refusal.error_type == "Busy"
        assert "rate limit for default messages from " + CALLER.did in refusal.message
        assert refusal.retry_after is not None and 0 < refusal.retry_after <= 1
        with pytest.raises(Busy):
            refusal.unwrap()
        # /public has its own budget, untouched by the default class.
        assert (await setup.answer(setup.inject(request("/public/count")))).ok
        await trio.sleep(2)
        assert (await setup.answer(setup.inject(request()))).ok


async def test_concurrent_handler_cap(autojump_clock: trio.testing.MockClock) -> None:
    policy = AdmissionPolicy(default=Budget(rate=1000.0, burst=1000.0, max_concurrent=2))
    _, counter, caller, host = await rig(SystemConfig(admission=policy))
    counter.gate = trio.Event()
    async with caller, host:
        await host.spawn(counter, name="root")
        setup = Rig(caller, host, counter)
        held = [setup.inject(request("/hold")) for _ in range(2)]
        third = await setup.answer(setup.inject(request("/hold")))
        assert third.error_type == "Busy"
        assert "too many default requests in progress (2)" in third.message
        counter.gate.set()
        for slot in held:
            assert (await setup.answer(slot)).ok
        # The slots are released: new work is admitted again.
        assert (await setup.answer(setup.inject(request()))).ok
        assert host._admission.in_flight["default"] == 0


async def test_refusal_replies_are_budgeted(autojump_clock: trio.testing.MockClock) -> None:
    policy = AdmissionPolicy(default=Budget(rate=0.001, burst=1.0, max_concurrent=10))
    config = SystemConfig(admission=policy, refusal_replies_per_s=2.0)
    _, counter, caller, host = await rig(config)
    async with caller, host:
        await host.spawn(counter, name="root")
        setup = Rig(caller, host, counter)
        slots = [setup.inject(request()) for _ in range(10)]
        answers = [await setup.answer(slot) for slot in slots]
        assert answers[0].ok
        assert sum(1 for a in answers if a is not None and not a.ok) == 2
        assert host.counters["refusal_replies_suppressed"] == 7


async def test_admission_is_released_when_authorisation_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = MemoryNetwork()
    policy = AdmissionPolicy(default=Budget(rate=1000.0, burst=1000.0, max_concurrent=1))
    async with (
        ActorSystem(CALLER, AllowAll(), transports=[network.transport()]) as caller,
        ActorSystem(
            HOST, transports=[network.transport()], config=SystemConfig(admission=policy)
        ) as host,
    ):
        await host.spawn(Counter, name="root")
        setup = Rig(caller, host, Counter())
        for _ in range(3):
            outcome = await setup.answer(setup.inject(request()))
            assert outcome.error_type == "Unauthorized"
        assert host._admission.in_flight["default"] == 0


async def test_broadcasts_a_node_refuses_are_not_forwarded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A - B - C in a line: what B does not accept, B does not relay to C."""
    a, b, c = (Identity.from_seed(bytes([n]) * 32) for n in (31, 32, 33))
    heard: list[Any] = []

    class Listener(Actor):
        @behaviour("/broadcast/hello")
        async def hello(self, ctx: Context, body: Any) -> None:
            heard.append(body)

    async def run(b_trusts: bool) -> tuple[ActorSystem, list[Any]]:
        heard.clear()
        network = MemoryNetwork()
        network.link(a.did, b.did)
        network.link(b.did, c.did)
        async with (
            ActorSystem(a, AllowAll(), transports=[network.transport()]) as sa,
            ActorSystem(
                b, AllowAll() if b_trusts else None, transports=[network.transport()]
            ) as sb,
            ActorSystem(c, AllowAll(), transports=[network.transport()]) as sc,
        ):
            await sc.spawn(Listener, name="root")
            sc.subscribe("/nunet/hello", "root")
            await sa.broadcast("/nunet/hello", "/broadcast/hello", "hi")
            await trio.testing.wait_all_tasks_blocked()
            return sb, list(heard)

    relay, received = await run(b_trusts=False)
    assert received == []
    assert relay.counters["refused_broadcast_unauthorized"] == 1
    _, received = await run(b_trusts=True)
    assert received == ["hi"]
