"""A Hypothesis state machine over the real ledger (SQLite file, Trio): random interleavings of
onboard, offboard, commit, uncommit, allocate, release, expiry and restart keep the invariants,
and each answer (accepted or refused, and why) is checked against the state just before."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
import trio
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
)

from dmsnode.resources import (
    Allocation,
    Commitment,
    CommitmentExpired,
    DuplicateAllocation,
    Gpu,
    Ledger,
    LedgerState,
    NotEnoughResources,
    NotOnboarded,
    OffboardRefused,
    OnboardingRefused,
    PortRequest,
    PortUnavailable,
    Resources,
    UnknownAllocation,
)
from dmsnode.store import Store

T = TypeVar("T")

GPUS = (
    Gpu("nvidia", 0, "A100", 80),
    Gpu("nvidia", 1, "A100", 80),
    Gpu("amd", 0, "MI300", 192),
)
IDS = st.sampled_from(["a", "b", "c", "d"])
FIRST, LAST = 30000, 30007  # eight ports, so they run out
PORTS = st.integers(FIRST - 1, LAST + 1)  # and a few outside the range
GPU_SETS = st.sets(st.sampled_from(GPUS), max_size=3).map(
    lambda gpus: tuple(sorted(gpus, key=lambda g: g.key))
)
#: Cores in thousandths (the ledger's unit); shares are a few cores, asks a fraction of them.
SHARE_CORES = st.integers(0, 4000).map(lambda m: m / 1000)
ASK_CORES = st.integers(0, 1500).map(lambda m: m / 1000)
ASK_GPUS = st.one_of(st.just(()), st.just(()), st.sampled_from(GPUS).map(lambda g: (g,)))

#: A share that most asks fit in (the node stays onboarded: offboarding onboards a new one).
SHARES = st.builds(
    Resources,
    cpu_cores=st.integers(2000, 4000).map(lambda m: m / 1000),
    ram=st.integers(6, 12),
    disk=st.integers(6, 12),
    gpus=GPU_SETS,
)

Key = tuple[int, int, int, frozenset[str]]


def key(amount: Resources) -> Key:
    """An amount as exact numbers: thousandths of a core, RAM, disk, GPU keys."""
    return (round(amount.cpu_cores * 1000), amount.ram, amount.disk, amount.gpu_keys)


def fits(amount: Resources, within: Resources) -> bool:
    a, b = key(amount), key(within)
    return a[0] <= b[0] and a[1] <= b[1] and a[2] <= b[2] and a[3] <= b[3]


def plus(a: Key, b: Key) -> Key:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] | b[3])


class FakeClock:
    """Unix time that moves only when a rule says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class TrioThread:
    """A Trio run in a thread of its own, so Hypothesis's synchronous rules can await."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._thread.start()
        self._ready.wait()

    async def _main(self) -> None:
        self._stop = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._ready.set()
        await self._stop.wait()

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        return trio.from_thread.run(fn, trio_token=self._token)

    def close(self) -> None:
        assert self._stop is not None
        trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join()


#: Ids that were committed once (they may be allocated, released or expired since).
COMMITTED: Bundle[str] = Bundle("committed")
#: Mostly ids that were committed, sometimes any id.
SOME_ID = st.one_of(COMMITTED, COMMITTED, IDS)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-"))
        self.clock = FakeClock()
        self.trio = TrioThread()
        self.store: Store | None = None
        self.ledger = self._open()
        # Ids that were committed with this expiry and may have expired since.
        self.expiries: dict[str, float] = {}

    def _open(self) -> Ledger:
        self.store = self.trio.run(lambda: Store.open(self.dir / "dms.sqlite3"))
        store = self.store
        return self.trio.run(lambda: Ledger.open(store, port_range=(FIRST, LAST), clock=self.clock))

    def _close(self) -> None:
        store = self.store
        if store is not None:
            self.trio.run(store.aclose)
            self.store = None

    def teardown(self) -> None:
        self._close()
        self.trio.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def state(self) -> LedgerState:
        return self.trio.run(self.ledger.state)

    # --- rules ----------------------------------------------------------------------------------

    @initialize(share=SHARES)
    def first_onboard(self, share: Resources) -> None:
        assert self.trio.run(lambda: self.ledger.onboard(share)) == share

    @rule(cores=SHARE_CORES, ram=st.integers(0, 12), disk=st.integers(0, 12), gpus=GPU_SETS)
    def onboard(self, cores: float, ram: int, disk: int, gpus: tuple[Gpu, ...]) -> None:
        before = self.state()
        share = Resources(cpu_cores=cores, ram=ram, disk=disk, gpus=gpus)
        try:
            recorded = self.trio.run(lambda: self.ledger.onboard(share))
        except OnboardingRefused:
            event("onboard: refused below what is in use")
            assert not fits(before.in_use, share)
            assert self.state() == before
        else:
            event("onboard: accepted")
            assert fits(before.in_use, share)
            assert recorded == share
            after = self.state()
            assert after.onboarded == share
            assert after.records == before.records

    @rule(force=st.booleans(), share=SHARES)
    def offboard_and_onboard_again(self, force: bool, share: Resources) -> None:
        before = self.state()
        try:
            stopped = self.trio.run(lambda: self.ledger.offboard(force=force))
        except OffboardRefused:
            event("offboard: refused")
            assert before.allocations and not force
            assert self.state() == before
            return
        event("offboard: done")
        assert before.onboarded is not None
        assert force or not before.allocations
        assert stopped == before.allocations
        assert self.state() == LedgerState(None, (), ())
        self.expiries.clear()
        with pytest.raises(NotOnboarded):
            self.trio.run(lambda: self.ledger.commit("x", Resources(), PortRequest(), 1))
        with pytest.raises(NotOnboarded):
            self.trio.run(lambda: self.ledger.offboard())
        assert self.trio.run(lambda: self.ledger.onboard(share)) == share

    @rule(
        target=COMMITTED,
        alloc_id=IDS,
        cores=ASK_CORES,
        ram=st.integers(0, 4),
        disk=st.integers(0, 4),
        gpus=ASK_GPUS,
        static=st.one_of(st.just(set()), st.sets(PORTS, max_size=2)),
        dynamic=st.integers(0, 2),
        ttl=st.sampled_from([1.0, 2.0, 30.0]),
    )
    def commit(
        self,
        alloc_id: str,
        cores: float,
        ram: int,
        disk: int,
        gpus: tuple[Gpu, ...],
        static: set[int],
        dynamic: int,
        ttl: float,
    ) -> MultipleResults[str] | str:
        before = self.state()
        ask = Resources(cpu_cores=cores, ram=ram, disk=disk, gpus=gpus)
        ports = PortRequest(tuple(sorted(static)), dynamic)
        booked = before.booked_ports
        free_ports = [p for p in range(FIRST, LAST + 1) if p not in booked and p not in static]
        ports_ok = all(FIRST <= p <= LAST and p not in booked for p in static) and dynamic <= len(
            free_ports
        )
        try:
            made = self.trio.run(lambda: self.ledger.commit(alloc_id, ask, ports, ttl))
        except NotOnboarded:
            assert before.onboarded is None
        except DuplicateAllocation:
            event("commit: duplicate")
            assert before.onboarded is not None and before.find(alloc_id) is not None
        except NotEnoughResources:
            event("commit: not enough resources")
            assert before.find(alloc_id) is None
            assert not fits(ask, before.free)
        except PortUnavailable:
            event("commit: port unavailable")
            assert before.find(alloc_id) is None and fits(ask, before.free)
            assert not ports_ok
        else:
            assert before.onboarded is not None and before.find(alloc_id) is None
            event("commit: accepted")
            assert fits(ask, before.free) and ports_ok
            assert key(made.resources) == key(ask)
            assert made.static_ports == ports.static
            assert made.dynamic_ports == tuple(free_ports[:dynamic])  # the lowest free ones
            assert made.expires_at == self.clock.now + ttl
            after = self.state()
            assert after.find(alloc_id) == made
            assert plus(key(after.free), key(made.resources)) == key(before.free)
            self.expiries[alloc_id] = made.expires_at
            return alloc_id
        assert self.state() == before
        return multiple()

    @rule(alloc_id=SOME_ID)
    def uncommit(self, alloc_id: str) -> None:
        before = self.state()
        record = before.find(alloc_id)
        try:
            withdrawn = self.trio.run(lambda: self.ledger.uncommit(alloc_id))
        except UnknownAllocation:
            assert not isinstance(record, Commitment)
            assert self.state() == before
        else:
            event("uncommit: accepted")
            assert withdrawn == record
            self._check_freed(before, withdrawn)

    @rule(alloc_id=SOME_ID)
    def allocate(self, alloc_id: str) -> None:
        before = self.state()
        record = before.find(alloc_id)
        try:
            made = self.trio.run(lambda: self.ledger.allocate(alloc_id))
        except DuplicateAllocation:
            assert isinstance(record, Allocation)
        except CommitmentExpired:
            event("allocate: expired")
            assert record is None
            assert self.expiries.get(alloc_id, float("inf")) <= self.clock.now
        except UnknownAllocation:
            assert record is None
        else:
            event("allocate: accepted")
            assert isinstance(record, Commitment)
            assert made == Allocation(
                alloc_id,
                record.resources,
                record.static_ports,
                record.dynamic_ports,
                self.clock.now,
            )
            after = self.state()
            assert after.find(alloc_id) == made
            assert after.free == before.free
            self.expiries.pop(alloc_id, None)
            return
        assert self.state() == before

    @rule(alloc_id=SOME_ID)
    def release(self, alloc_id: str) -> None:
        before = self.state()
        record = before.find(alloc_id)
        try:
            released = self.trio.run(lambda: self.ledger.release(alloc_id))
        except UnknownAllocation:
            assert record is None
            assert self.state() == before
        else:
            event(f"release: {type(released).__name__}")
            assert released == record
            self._check_freed(before, released)

    def _check_freed(self, before: LedgerState, record: Commitment | Allocation) -> None:
        """After ``record`` is gone: it freed exactly what it held, ports included."""
        after = self.state()
        assert after.find(record.alloc_id) is None
        assert key(after.free) == plus(key(before.free), key(record.resources))
        assert after.booked_ports == before.booked_ports - set(record.ports)
        self.expiries.pop(record.alloc_id, None)

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 30.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule()
    def expire(self) -> None:
        before = self.state()
        gone = self.trio.run(self.ledger.expire)
        event(f"expire: {'some' if gone else 'none'}")
        assert all(self.expiries[i] <= self.clock.now for i in gone)
        assert self.state() == before  # expired commitments were not counted anyway

    @rule()
    def restart(self) -> None:
        before = self.state()
        self._close()
        self.ledger = self._open()
        event(f"restart with {len(before.records)} records" if before.records else "restart empty")
        assert self.state() == before

    # --- invariants -----------------------------------------------------------------------------

    @invariant()
    def the_books_balance(self) -> None:
        state = self.state()
        if state.onboarded is None:
            assert state.records == ()
            return
        # free >= 0 (and Resources refuses negative amounts, so computing it checks it too);
        # allocated + committed <= onboarded.
        free = key(state.free)
        assert min(free[:3]) >= 0
        assert fits(state.in_use, state.onboarded)
        assert plus(key(state.in_use), free) == key(state.onboarded)
        # No GPU or port is held twice, and every port is in the range.
        gpus = [g for r in state.records for g in r.resources.gpu_keys]
        assert len(gpus) == len(set(gpus))
        ports = [p for r in state.records for p in r.ports]
        assert len(ports) == len(set(ports))
        assert all(FIRST <= p <= LAST for p in ports)
        # What is visible is live.
        assert all(c.expires_at > self.clock.now for c in state.commitments)


LedgerMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
