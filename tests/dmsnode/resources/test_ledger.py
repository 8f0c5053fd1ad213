"""The ledger on real SQLite files: accounting, refusals, ports, expiry, restarts, races."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from dmsnode.errors import BadRequest, ConfigError, StoreError
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
    PortRequest,
    PortUnavailable,
    Resources,
    UnknownAllocation,
)
from dmsnode.store import MIGRATIONS, Store, open_store

GiB = 2**30
GPU0 = Gpu("nvidia", 0, "A100", 40 * GiB)
GPU1 = Gpu("nvidia", 1, "A100", 40 * GiB)
SHARE = Resources(cpu_cores=4, cpu_hz=2_400_000_000, ram=8 * GiB, disk=100 * GiB, gpus=(GPU0, GPU1))
RANGE = (20000, 20009)
NO_PORTS = PortRequest()


class FakeClock:
    """Unix time that moves only when a test says so."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "dms.sqlite3"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(path: Path) -> AsyncIterator[Store]:
    async with open_store(path) as store:
        yield store


@pytest.fixture
async def ledger(store: Store, clock: FakeClock) -> Ledger:
    ledger = await Ledger.open(store, port_range=RANGE, clock=clock)
    await ledger.onboard(SHARE)
    return ledger


def amount(cores: float = 0, ram: int = 0, disk: int = 0, gpus: tuple[Gpu, ...] = ()) -> Resources:
    return Resources(cpu_cores=cores, ram=ram, disk=disk, gpus=gpus)


# --- accounting ---------------------------------------------------------------------------------


async def test_free_is_onboarded_minus_committed_minus_allocated(
    ledger: Ledger, clock: FakeClock
) -> None:
    assert await ledger.free() == SHARE
    c = await ledger.commit("a", amount(1.5, 2 * GiB, 10 * GiB, (GPU1,)), NO_PORTS, ttl=30)
    assert c == Commitment("a", amount(1.5, 2 * GiB, 10 * GiB, (GPU1,)), (), (), clock.now + 30)
    await ledger.commit("b", amount(1, GiB), NO_PORTS, ttl=30)
    allocation = await ledger.allocate("b")
    assert allocation == Allocation("b", amount(1, GiB), (), (), clock.now)
    state = await ledger.state()
    assert state.commitments == (c,)
    assert state.allocations == (allocation,)
    assert state.committed == amount(1.5, 2 * GiB, 10 * GiB, (GPU1,))
    assert state.allocated == amount(1, GiB)
    assert await ledger.committed() == state.committed
    assert await ledger.allocated() == state.allocated
    assert await ledger.free() == Resources(
        cpu_cores=1.5, cpu_hz=SHARE.cpu_hz, ram=5 * GiB, disk=90 * GiB, gpus=(GPU0,)
    )
    # Releasing frees exactly what each held.
    assert await ledger.release("a") == c
    assert await ledger.release("b") == allocation
    assert await ledger.free() == SHARE
    assert await ledger.commitments() == ()
    assert await ledger.allocations() == ()


async def test_gpus_are_recorded_as_onboarded(ledger: Ledger) -> None:
    # The requester may only know the key; the ledger records the onboarded device.
    c = await ledger.commit("a", amount(gpus=(Gpu("nvidia", 0, "", 0),)), NO_PORTS, ttl=30)
    assert c.resources.gpus == (GPU0,)


async def test_cores_are_counted_in_thousandths_without_float_drift(ledger: Ledger) -> None:
    # 40 x 0.1 cores is exactly 4 cores: all fit, the 41st does not.
    for i in range(40):
        await ledger.commit(f"c{i}", amount(0.1), NO_PORTS, ttl=30)
    assert (await ledger.free()).cpu_cores == 0
    assert (await ledger.committed()).cpu_cores == 4
    with pytest.raises(NotEnoughResources, match=r"not enough CPU: asked 0\.1 cores, 0 cores free"):
        await ledger.commit("one-more", amount(0.1), NO_PORTS, ttl=30)
    for i in range(40):
        await ledger.release(f"c{i}")
    # A request is rounded up to the next thousandth, never down.
    c = await ledger.commit("tiny", amount(0.0001), NO_PORTS, ttl=30)
    assert c.resources.cpu_cores == 0.001


async def test_refusals_name_what_is_short(ledger: Ledger) -> None:
    await ledger.commit("a", amount(3, 6 * GiB, gpus=(GPU0,)), NO_PORTS, ttl=30)
    with pytest.raises(NotEnoughResources) as info:
        await ledger.commit("b", amount(2, 4 * GiB, 200 * GiB, (GPU0,)), NO_PORTS, ttl=30)
    assert str(info.value) == (
        "not enough CPU: asked 2 cores, 1 core free;"
        " not enough RAM: asked 4 GiB, 2 GiB free;"
        " not enough disk: asked 200 GiB, 100 GiB free;"
        " GPU nvidia:0 is not free"
    )
    with pytest.raises(NotEnoughResources, match=r"^GPU amd:0 is not onboarded on this node$"):
        await ledger.commit("b", amount(gpus=(Gpu("amd", 0, "MI300", GiB),)), NO_PORTS, ttl=30)
    fast = Resources(cpu_cores=1, cpu_hz=3_000_000_000)
    with pytest.raises(
        NotEnoughResources, match=r"^CPU clock: asked 3 GHz, this node's cores run at 2.4 GHz$"
    ):
        await ledger.commit("b", fast, NO_PORTS, ttl=30)
    # Amounts that look the same once rounded are printed in bytes.
    with pytest.raises(NotEnoughResources, match=r"asked 2147483649 B, 2147483648 B free"):
        await ledger.commit("b", amount(ram=2 * GiB + 1), NO_PORTS, ttl=30)
    # Nothing refused was recorded.
    assert [c.alloc_id for c in await ledger.commitments()] == ["a"]


async def test_ids_unknown_duplicate_or_in_the_wrong_state(ledger: Ledger) -> None:
    await ledger.commit("a", amount(1), NO_PORTS, ttl=30)
    with pytest.raises(DuplicateAllocation, match="'a' is already committed or allocated"):
        await ledger.commit("a", amount(1), NO_PORTS, ttl=30)
    await ledger.allocate("a")
    with pytest.raises(DuplicateAllocation, match="'a' is already allocated"):
        await ledger.allocate("a")
    with pytest.raises(DuplicateAllocation):
        await ledger.commit("a", amount(1), NO_PORTS, ttl=30)
    with pytest.raises(UnknownAllocation, match=r"no commitment 'a' \(it is an allocation"):
        await ledger.uncommit("a")
    for operation in (ledger.uncommit, ledger.allocate, ledger.release):
        with pytest.raises(UnknownAllocation, match="'nope'"):
            await operation("nope")
    await ledger.release("a")
    with pytest.raises(UnknownAllocation, match="no commitment or allocation 'a'"):
        await ledger.release("a")


async def test_uncommit_frees_the_commitment(ledger: Ledger) -> None:
    c = await ledger.commit("a", amount(2, gpus=(GPU0,)), PortRequest((20003,), 1), ttl=30)
    assert await ledger.uncommit("a") == c
    assert await ledger.free() == SHARE
    again = await ledger.commit("b", amount(), PortRequest((20003,)), ttl=30)
    assert again.ports == (20003,)


async def test_bad_arguments_are_refused(ledger: Ledger) -> None:
    for ttl in (0, -1, float("inf"), float("nan")):
        with pytest.raises(BadRequest, match="ttl must be a positive number"):
            await ledger.commit("a", amount(1), NO_PORTS, ttl=ttl)
    for bad in ("", "x" * 257):
        with pytest.raises(BadRequest, match="allocation id"):
            await ledger.commit(bad, amount(1), NO_PORTS, ttl=1)
    with pytest.raises(BadRequest, match="asked twice"):
        PortRequest((20001, 20001))
    with pytest.raises(BadRequest, match="cannot be negative"):
        PortRequest(dynamic=-1)
    with pytest.raises(BadRequest, match="not a port number"):
        PortRequest((70000,))
    assert PortRequest.from_dict({"static": [20001], "dynamic": 2}) == PortRequest((20001,), 2)
    with pytest.raises(BadRequest, match=r"ports\.dynamic must be an integer"):
        PortRequest.from_dict({"dynamic": "2"})


async def test_not_onboarded(store: Store, clock: FakeClock) -> None:
    ledger = await Ledger.open(store, port_range=RANGE, clock=clock)
    assert await ledger.onboarded() is None
    assert await ledger.free() == Resources()
    with pytest.raises(NotOnboarded, match="not onboarded"):
        await ledger.commit("a", amount(1), NO_PORTS, ttl=1)
    with pytest.raises(NotOnboarded):
        await ledger.offboard()


async def test_offboard_drops_commitments_and_can_be_forced(ledger: Ledger) -> None:
    await ledger.commit("c", amount(1), NO_PORTS, ttl=30)
    assert await ledger.offboard() == ()
    assert await ledger.state() == LedgerState(None, (), ())
    await ledger.onboard(SHARE)
    await ledger.commit("a", amount(1), NO_PORTS, ttl=30)
    a = await ledger.allocate("a")
    with pytest.raises(OffboardRefused, match=r"^1 allocation is running \(a\); stop it first"):
        await ledger.offboard()
    assert await ledger.offboard(force=True) == (a,)
    assert await ledger.onboarded() is None


async def test_reopening_checks_the_store_and_the_range(tmp_path: Path, path: Path) -> None:
    async with open_store(tmp_path / "old.sqlite3", migrations=MIGRATIONS[:1]) as old:
        with pytest.raises(StoreError, match="no ledger tables"):
            await Ledger.open(old)
    async with open_store(path) as store:
        with pytest.raises(ConfigError, match=r"job\.port_range"):
            await Ledger.open(store, port_range=(30000, 20000))
        ledger = await Ledger.open(store, port_range=(0, 10))
        assert ledger.port_range == (1, 10)  # port 0 is not a port


# --- ports --------------------------------------------------------------------------------------


async def test_static_and_dynamic_ports(ledger: Ledger) -> None:
    a = await ledger.commit("a", amount(), PortRequest((20001, 20005), 2), ttl=30)
    assert (a.static_ports, a.dynamic_ports) == ((20001, 20005), (20000, 20002))
    assert a.ports == (20000, 20001, 20002, 20005)
    b = await ledger.commit("b", amount(), PortRequest(dynamic=3), ttl=30)
    assert b.dynamic_ports == (20003, 20004, 20006)
    with pytest.raises(PortUnavailable) as info:
        await ledger.commit("c", amount(), PortRequest((80, 20003, 20009)), ttl=30)
    assert str(info.value) == (
        "port 80 is outside job.port_range 20000-20009; port 20003 is already booked"
    )
    with pytest.raises(PortUnavailable) as info:
        await ledger.commit("c", amount(), PortRequest((20009,), dynamic=3), ttl=30)
    assert str(info.value) == (
        "not enough free ports in job.port_range 20000-20009: asked 3 dynamic, 2 free"
    )
    await ledger.release("a")
    c = await ledger.commit("c", amount(), PortRequest(dynamic=4), ttl=30)
    assert c.dynamic_ports == (20000, 20001, 20002, 20005)


async def test_a_refused_commit_books_no_port(ledger: Ledger) -> None:
    with pytest.raises(NotEnoughResources):
        await ledger.commit("a", amount(100), PortRequest((20001,), 2), ttl=30)
    assert (await ledger.state()).booked_ports == frozenset()


# --- expiry -------------------------------------------------------------------------------------


async def test_commitments_expire_after_their_ttl(ledger: Ledger, clock: FakeClock) -> None:
    await ledger.commit("a", amount(2, gpus=(GPU0,)), PortRequest((20001,)), ttl=10)
    await ledger.commit("b", amount(1), NO_PORTS, ttl=20)
    clock.advance(9.999)
    assert len(await ledger.commitments()) == 2
    clock.advance(0.001)  # at its expiry time, "a" is gone
    assert [c.alloc_id for c in await ledger.commitments()] == ["b"]
    assert await ledger.free() == Resources(
        cpu_cores=3, cpu_hz=SHARE.cpu_hz, ram=SHARE.ram, disk=SHARE.disk, gpus=SHARE.gpus
    )
    with pytest.raises(CommitmentExpired, match=r"the commitment 'a' expired 0.0 s ago"):
        await ledger.allocate("a")
    # Its port and GPU are free for someone else straight away.
    await ledger.commit("c", amount(gpus=(GPU0,)), PortRequest((20001,)), ttl=10)
    # That write purged "a": it is now simply unknown.
    with pytest.raises(UnknownAllocation, match="it may have expired"):
        await ledger.allocate("a")
    clock.advance(100)
    assert await ledger.expire() == ("b", "c")
    assert await ledger.expire() == ()


async def test_an_allocation_does_not_expire(ledger: Ledger, clock: FakeClock) -> None:
    await ledger.commit("a", amount(1), NO_PORTS, ttl=10)
    await ledger.allocate("a")
    clock.advance(3600)
    assert await ledger.expire() == ()
    assert [a.alloc_id for a in await ledger.allocations()] == ["a"]


async def test_expired_rows_are_deleted_with_their_gpus_and_ports(
    ledger: Ledger, store: Store, clock: FakeClock
) -> None:
    await ledger.commit("a", amount(gpus=(GPU0, GPU1)), PortRequest((20001,), 2), ttl=1)
    clock.advance(1)
    await ledger.expire()

    def counts(conn: sqlite3.Connection) -> list[int]:
        tables = ("allocations", "allocation_gpus", "allocation_ports")
        return [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables]

    assert await store.read(counts) == [0, 0, 0]


# --- restarts -----------------------------------------------------------------------------------


async def test_the_ledger_survives_a_restart(path: Path, clock: FakeClock) -> None:
    async with open_store(path) as store:
        ledger = await Ledger.open(store, port_range=RANGE, clock=clock)
        await ledger.onboard(SHARE)
        await ledger.commit("a", amount(1, GiB, gpus=(GPU0,)), PortRequest((20004,), 1), ttl=60)
        await ledger.commit("b", amount(2, GiB), PortRequest(dynamic=2), ttl=30)
        await ledger.allocate("b")
        before = await ledger.state()
    async with open_store(path) as store:
        ledger = await Ledger.open(store, port_range=RANGE, clock=clock)
        assert await ledger.state() == before
        # The commitment's expiry is absolute: it still ends 60 s after it was made.
        clock.advance(60)
        assert await ledger.commitments() == ()
        assert await ledger.allocations() == before.allocations


# --- races --------------------------------------------------------------------------------------


async def race(
    ledger: Ledger, n: int, ask: Resources, ports: PortRequest, *, prefix: str = "job"
) -> tuple[int, list[str]]:
    """``n`` tasks commit ``ask`` at once; how many succeeded, and the refusals."""
    won = 0
    refusals: list[str] = []

    async def one(i: int) -> None:
        nonlocal won
        try:
            await ledger.commit(f"{prefix}-{i}", ask, ports, ttl=60)
        except (NotEnoughResources, PortUnavailable) as exc:
            refusals.append(str(exc))
        else:
            won += 1

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
    return won, refusals


async def test_200_concurrent_commits_for_a_share_that_fits_50(
    store: Store, clock: FakeClock
) -> None:
    ledger = await Ledger.open(store, port_range=RANGE, clock=clock)
    await ledger.onboard(Resources(cpu_cores=50, ram=100 * GiB, disk=50 * GiB))
    won, refusals = await race(ledger, 200, amount(1, 2 * GiB, GiB), NO_PORTS)
    assert won == 50
    assert len(refusals) == 150
    assert set(refusals) == {
        "not enough CPU: asked 1 core, 0 cores free; not enough RAM: asked 2 GiB, 0 B free;"
        " not enough disk: asked 1 GiB, 0 B free"
    }
    state = await ledger.state()
    assert len(state.commitments) == 50
    assert state.free == Resources()


async def test_two_stores_on_one_file_race_for_the_same_share(path: Path, clock: FakeClock) -> None:
    # Two connections (as two processes would have): BEGIN IMMEDIATE serialises them too.
    async with open_store(path) as first, open_store(path) as second:
        ledgers = [await Ledger.open(s, port_range=RANGE, clock=clock) for s in (first, second)]
        await ledgers[0].onboard(Resources(cpu_cores=50, ram=GiB, disk=GiB))
        results: list[tuple[int, list[str]]] = []

        async def side(k: int) -> None:
            results.append(await race(ledgers[k], 100, amount(1), NO_PORTS, prefix=f"side{k}"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(side, 0)
            nursery.start_soon(side, 1)
        assert sum(won for won, _ in results) == 50
        assert sum(len(refusals) for _, refusals in results) == 150
        assert len(await ledgers[1].commitments()) == 50


async def test_200_concurrent_commits_for_50_ports(store: Store, clock: FakeClock) -> None:
    ledger = await Ledger.open(store, port_range=(30000, 30049), clock=clock)
    await ledger.onboard(Resources(cpu_cores=1, ram=GiB, disk=GiB))
    won, refusals = await race(ledger, 200, amount(), PortRequest(dynamic=1))
    assert won == 50
    assert set(refusals) == {
        "not enough free ports in job.port_range 30000-30049: asked 1 dynamic, 0 free"
    }
    state = await ledger.state()
    ports = [p for c in state.commitments for p in c.ports]
    assert sorted(ports) == list(range(30000, 30050))
