"""Whether a provider bids: every reason it may not, and the GPUs it would give."""

from __future__ import annotations

import pytest

from dmsnode.deployment import NodeRequest
from dmsnode.ensemble import GpuRequest, Location, LocationConstraints
from dmsnode.executors import Availability
from dmsnode.provider import Host, assess, choose_gpus
from dmsnode.resources import Gpu, LedgerState, PortRequest, Resources

GIB = 1 << 30
A100 = Gpu("nvidia", 0, "NVIDIA A100-SXM4-80GB", 80 * GIB)
T4 = Gpu("nvidia", 1, "Tesla T4", 16 * GIB)
MI = Gpu("amd", 0, "AMD Instinct MI210", 64 * GIB)
SHARE = Resources(
    cpu_cores=4, cpu_hz=3_000_000_000, ram=8 * GIB, disk=100 * GIB, gpus=(A100, T4, MI)
)
HOST = Host(
    executors={"null": Availability(True), "docker": Availability(False, "no daemon")},
    location=Location("Europe", "DE", "Berlin"),
    allow_privileged=False,
    port_range=(20000, 20010),
)


def ledger(onboarded: Resources | None = SHARE) -> LedgerState:
    return LedgerState(onboarded, (), ())


def request(**fields: object) -> NodeRequest:
    defaults: dict[str, object] = {
        "node": "n1",
        "executors": ("null",),
        "resources": Resources(cpu_cores=1, ram=GIB, disk=GIB),
    }
    return NodeRequest(**(defaults | fields))  # type: ignore[arg-type]


def test_a_fitting_request_gets_an_offer() -> None:
    assessment = assess(request(), ledger(), HOST)
    assert assessment.problem == ""
    assert assessment.offer is not None
    assert assessment.offer.free == SHARE
    assert assessment.offer.gpus == ()


@pytest.mark.parametrize(
    ("change", "host", "problem"),
    [
        ({}, None, "this node is not onboarded"),
        ({"executors": ("process",)}, HOST, "this node has no process executor"),
        ({"executors": ("docker",)}, HOST, "the docker executor is unavailable: no daemon"),
        ({"privileged": True}, HOST, "job.allow_privileged_docker is off"),
        (
            {"location": LocationConstraints(accept=(Location("Asia"),))},
            HOST,
            "Europe/DE/Berlin is not one accepted (Asia)",
        ),
        (
            {"location": LocationConstraints(reject=(Location("Europe", "DE"),))},
            HOST,
            "Europe/DE/Berlin is rejected (Europe/DE)",
        ),
        (
            {"resources": Resources(cpu_cores=5)},
            HOST,
            "not enough CPU: asked 5 cores, 4 cores free",
        ),
        ({"resources": Resources(ram=9 * GIB)}, HOST, "not enough RAM: asked 9 GiB, 8 GiB free"),
        (
            {"resources": Resources(cpu_hz=4_000_000_000)},
            HOST,
            "CPU clock: asked 4 GHz, this node's cores run at 3 GHz",
        ),
        ({"gpus": (GpuRequest(vendor="intel"),)}, HOST, "no free GPU of the kind asked (intel"),
        ({"ports": PortRequest(static=(80,))}, HOST, "port 80 is outside job.port_range"),
        ({"ports": PortRequest(dynamic=12)}, HOST, "not enough free ports"),
    ],
)
def test_every_reason_not_to_bid_is_stated(
    change: dict[str, object], host: Host | None, problem: str
) -> None:
    state = ledger(None) if host is None else ledger()
    assessment = assess(request(**change), state, host or HOST)
    assert assessment.offer is None
    assert problem in assessment.problem


def test_gpus_are_chosen_largest_request_first_smallest_device_that_fits() -> None:
    wanted = (GpuRequest(vendor="nvidia"), GpuRequest(vram=70 * GIB))
    assert choose_gpus(wanted, (A100, T4, MI)) == (A100, T4)
    # The big request takes the only device big enough, the small one the smallest left.
    assert choose_gpus((GpuRequest(), GpuRequest(vram=70 * GIB)), (A100, T4, MI)) == (A100, T4)
    assert choose_gpus((GpuRequest(model="a100"), GpuRequest(model="a100")), (A100, T4)) is None
    assert choose_gpus((GpuRequest(vendor="amd", vram=65 * GIB),), (MI,)) is None
    assert choose_gpus((), ()) == ()


def test_the_gpus_offered_are_in_the_offer() -> None:
    assessment = assess(request(gpus=(GpuRequest(model="T4"),)), ledger(), HOST)
    assert assessment.offer is not None
    assert assessment.offer.gpus == (T4,)
