"""Onboarding limits (NuNet's): each refusal names the limit it broke."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dmsnode.errors import OnboardingRefused
from dmsnode.resources import (
    Gpu,
    Ledger,
    OffboardRefused,
    PortRequest,
    Resources,
    check_onboarding,
)
from dmsnode.store import Store, open_store

GiB = 2**30
GPU0 = Gpu("nvidia", 0, "RTX 4090", 24 * GiB)
GPU1 = Gpu("nvidia", 1, "RTX 4090", 24 * GiB)
MACHINE = Resources(
    cpu_cores=8, cpu_hz=3_200_000_000, ram=int(31.2 * GiB), disk=500 * GiB, gpus=(GPU0, GPU1)
)
DISK_FREE = 100 * GiB
NOTHING = Resources()


def share(**changes: object) -> Resources:
    """A share that every limit accepts, with ``changes``."""
    fields: dict[str, object] = {
        "cpu_cores": 4.0,
        "cpu_hz": 3_200_000_000,
        "ram": 16 * GiB,
        "disk": 50 * GiB,
        "gpus": (GPU0,),
    }
    fields.update(changes)
    return Resources(**fields)  # type: ignore[arg-type]


def refusal(request: Resources, *, allocated: Resources = NOTHING) -> str:
    with pytest.raises(OnboardingRefused) as info:
        check_onboarding(request, MACHINE, disk_free=DISK_FREE, allocated=allocated)
    return str(info.value)


def test_a_share_within_every_limit_is_accepted() -> None:
    check_onboarding(share(), MACHINE, disk_free=DISK_FREE, allocated=NOTHING)
    # Cores are a number: a fractional share is fine, and so is all of the machine's.
    check_onboarding(share(cpu_cores=2.5), MACHINE, disk_free=DISK_FREE, allocated=NOTHING)
    check_onboarding(share(cpu_cores=8), MACHINE, disk_free=DISK_FREE, allocated=NOTHING)
    # Whole GPUs: both devices, all of their VRAM.
    check_onboarding(share(gpus=(GPU0, GPU1)), MACHINE, disk_free=DISK_FREE, allocated=NOTHING)
    check_onboarding(share(gpus=()), MACHINE, disk_free=DISK_FREE, allocated=NOTHING)


def test_cores_at_least_one_and_at_most_the_machines() -> None:
    assert refusal(share(cpu_cores=0.5)) == "CPU 0.5 cores is less than the minimum of 1 core"
    assert refusal(share(cpu_cores=0)) == "CPU 0 cores is less than the minimum of 1 core"
    assert refusal(share(cpu_cores=9)) == "CPU 9 cores is more than this machine's 8"
    check_onboarding(share(cpu_cores=1), MACHINE, disk_free=DISK_FREE, allocated=NOTHING)


def test_the_clock_cannot_be_faster_than_the_machines() -> None:
    assert refusal(share(cpu_hz=4_000_000_000)) == (
        "CPU clock 4 GHz is faster than this machine's 3.2 GHz"
    )
    # An unknown machine clock (0) is not a limit.
    check_onboarding(
        share(cpu_hz=4_000_000_000, gpus=()),
        Resources(cpu_cores=8, ram=MACHINE.ram),
        disk_free=DISK_FREE,
        allocated=NOTHING,
    )


def test_ram_between_10_and_90_percent() -> None:
    assert refusal(share(ram=30 * GiB)) == (
        "RAM 30 GiB is more than 90% of this machine's 31.2 GiB (limit 28.1 GiB)"
    )
    assert refusal(share(ram=2 * GiB)) == (
        "RAM 2 GiB is less than 10% of this machine's 31.2 GiB (minimum 3.12 GiB)"
    )


def test_ram_limits_are_exact() -> None:
    machine = Resources(cpu_cores=4, ram=10 * GiB)
    for ram in (GiB, 9 * GiB):  # exactly 10% and exactly 90%
        check_onboarding(share(ram=ram, gpus=()), machine, disk_free=DISK_FREE, allocated=NOTHING)
    with pytest.raises(OnboardingRefused) as info:
        check_onboarding(
            share(ram=9 * GiB + 1, gpus=()), machine, disk_free=DISK_FREE, allocated=NOTHING
        )
    # Rounded, the two numbers would look the same: then they are printed in bytes.
    assert str(info.value) == (
        "RAM 9663676417 B is more than 90% of this machine's 10 GiB (limit 9663676416 B)"
    )
    with pytest.raises(OnboardingRefused, match="less than 10%"):
        check_onboarding(
            share(ram=GiB - 1, gpus=()), machine, disk_free=DISK_FREE, allocated=NOTHING
        )


def test_gpus_must_be_the_machines() -> None:
    other = Gpu("amd", 0, "MI300", 192 * GiB)
    assert refusal(share(gpus=(other,))) == (
        "GPU amd:0 is not on this machine (it has nvidia:0, nvidia:1)"
    )
    bigger = Gpu("nvidia", 0, "RTX 4090", 48 * GiB)
    assert refusal(share(gpus=(bigger,))) == "GPU nvidia:0 has 24 GiB of VRAM, not 48 GiB"
    with pytest.raises(
        OnboardingRefused, match=r"GPU nvidia:0 is not on this machine \(it has no GPU\)"
    ):
        check_onboarding(
            share(),
            Resources(cpu_cores=8, ram=MACHINE.ram),
            disk_free=DISK_FREE,
            allocated=NOTHING,
        )


def test_disk_within_the_free_disk() -> None:
    assert refusal(share(disk=0)) == "disk: onboard some disk (0 B asked)"
    assert refusal(share(disk=120 * GiB)) == (
        "disk 120 GiB is more than the 100 GiB free in the work directory"
    )
    check_onboarding(share(disk=DISK_FREE), MACHINE, disk_free=DISK_FREE, allocated=NOTHING)


def test_not_below_what_is_in_use() -> None:
    used = Resources(cpu_cores=3, ram=12 * GiB, disk=40 * GiB, gpus=(GPU1,))
    assert refusal(share(cpu_cores=2, ram=8 * GiB, disk=30 * GiB), allocated=used) == (
        "CPU 2 cores is below the 3 cores allocated or committed;"
        " RAM 8 GiB is below the 12 GiB allocated or committed;"
        " disk 30 GiB is below the 40 GiB allocated or committed;"
        " GPU nvidia:1 is allocated or committed, so it must stay onboarded"
    )
    check_onboarding(
        share(cpu_cores=3, ram=12 * GiB, disk=40 * GiB, gpus=(GPU0, GPU1)),
        MACHINE,
        disk_free=DISK_FREE,
        allocated=used,
    )


def test_every_broken_limit_is_named() -> None:
    message = refusal(share(cpu_cores=0, ram=31 * GiB, disk=0))
    assert message.split("; ") == [
        "CPU 0 cores is less than the minimum of 1 core",
        "RAM 31 GiB is more than 90% of this machine's 31.2 GiB (limit 28.1 GiB)",
        "disk: onboard some disk (0 B asked)",
    ]


# --- through the ledger -------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(tmp_path / "dms.sqlite3") as store:
        yield store


async def test_the_ledger_applies_the_limits_when_given_the_machine(store: Store) -> None:
    ledger = await Ledger.open(store)
    with pytest.raises(OnboardingRefused, match=r"RAM 30 GiB is more than 90%"):
        await ledger.onboard(share(ram=30 * GiB), machine=MACHINE, disk_free=DISK_FREE)
    assert await ledger.onboarded() is None
    recorded = await ledger.onboard(share(), machine=MACHINE, disk_free=DISK_FREE)
    assert recorded == share()
    assert await ledger.onboarded() == share()


async def test_onboarding_below_what_is_allocated_or_committed_is_refused(store: Store) -> None:
    ledger = await Ledger.open(store)
    await ledger.onboard(share(), machine=MACHINE, disk_free=DISK_FREE)
    await ledger.commit("job-1", Resources(cpu_cores=3, ram=8 * GiB), PortRequest(), ttl=60)
    await ledger.allocate("job-1")
    await ledger.commit("job-2", Resources(gpus=(GPU0,)), PortRequest(), ttl=60)
    with pytest.raises(OnboardingRefused) as info:
        await ledger.onboard(share(cpu_cores=2, ram=4 * GiB, gpus=()))
    assert str(info.value) == (
        "CPU 2 cores is below the 3 cores allocated or committed;"
        " RAM 4 GiB is below the 8 GiB allocated or committed;"
        " GPU nvidia:0 is allocated or committed, so it must stay onboarded"
    )
    # The same refusal with the machine's limits checked too.
    with pytest.raises(OnboardingRefused, match="below the 3 cores allocated"):
        await ledger.onboard(share(cpu_cores=2), machine=MACHINE, disk_free=DISK_FREE)
    assert await ledger.onboarded() == share()
    # A smaller share that still holds everything in use is fine.
    smaller = share(cpu_cores=3, ram=8 * GiB)
    assert await ledger.onboard(smaller) == smaller
    assert (await ledger.free()).cpu_cores == 0


async def test_offboarding_with_allocations_is_refused_unless_forced(store: Store) -> None:
    ledger = await Ledger.open(store)
    await ledger.onboard(share(), machine=MACHINE, disk_free=DISK_FREE)
    await ledger.commit("job-1", Resources(cpu_cores=1), PortRequest(dynamic=1), ttl=60)
    first = await ledger.allocate("job-1")
    await ledger.commit("job-2", Resources(cpu_cores=1), PortRequest(), ttl=60)
    await ledger.allocate("job-2")
    with pytest.raises(OffboardRefused) as info:
        await ledger.offboard()
    assert str(info.value) == (
        "2 allocations are running (job-1, job-2); stop them first, or offboard with force"
    )
    assert await ledger.onboarded() == share()
    stopped = await ledger.offboard(force=True)
    assert [a.alloc_id for a in stopped] == ["job-1", "job-2"]
    assert stopped[0] == first
    state = await ledger.state()
    assert (state.onboarded, state.commitments, state.allocations) == (None, (), ())
