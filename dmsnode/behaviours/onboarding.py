"""``/dms/node/onboarding/*``, ``/dms/node/resources/*`` and ``/dms/node/hardware/*``.

Bodies carry machine units (cores, bytes), but sizes may also be given as text with units
(``"8GiB"``). GPUs are named by key (``"nvidia:0"``) or, when unambiguous, by index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nuactor import Actor, Context

from ..errors import BadRequest, DmsError
from ..resources import Gpu, Ledger, Resources, parse_bytes, usage

if TYPE_CHECKING:
    from ..node import Node


class NotReady(DmsError):
    """The node has no ledger or hardware survey (it runs without a store)."""


def register(actor: Actor, node: Node) -> None:
    def ledger() -> Ledger:
        if node.ledger is None or node.hardware is None:
            raise NotReady("this node keeps no resource ledger (it was started without a store)")
        return node.ledger

    @actor.on("/dms/node/onboarding/onboard")
    async def onboard(ctx: Context, body: Any) -> dict[str, Any]:
        """Offer a share of this machine: ``{cpu_cores, ram, disk, gpus?}``."""
        request = _share(body, node)
        hardware = node.hardware
        assert hardware is not None
        share = await ledger().onboard(
            request, machine=hardware.resources, disk_free=hardware.disk_free
        )
        await node.record("onboarding.onboard", {"resources": share.to_dict(), "by": ctx.sender})
        return {"onboarded": share.to_dict()}

    @actor.on("/dms/node/onboarding/offboard")
    async def offboard(ctx: Context, body: Any) -> dict[str, Any]:
        """Stop offering resources; ``{force: true}`` also stops running allocations."""
        force = bool(body.get("force", False)) if isinstance(body, dict) else False
        stopped = await ledger().offboard(force=force)
        ids = [allocation.alloc_id for allocation in stopped]
        await node.stop_allocations(ids)
        await node.record("onboarding.offboard", {"force": force, "stopped": ids, "by": ctx.sender})
        return {"offboarded": True, "stopped": ids}

    @actor.on("/dms/node/onboarding/status")
    async def status(ctx: Context, body: Any) -> dict[str, Any]:
        onboarded = await ledger().onboarded()
        return {
            "onboarded": onboarded is not None,
            "resources": None if onboarded is None else onboarded.to_dict(),
        }

    @actor.on("/dms/node/resources/onboarded")
    async def onboarded(ctx: Context, body: Any) -> dict[str, Any] | None:
        share = await ledger().onboarded()
        return None if share is None else share.to_dict()

    @actor.on("/dms/node/resources/free")
    async def free(ctx: Context, body: Any) -> dict[str, Any]:
        return (await ledger().free()).to_dict()

    @actor.on("/dms/node/resources/allocated")
    async def allocated(ctx: Context, body: Any) -> dict[str, Any]:
        state = await ledger().state()
        return {
            "allocated": state.allocated.to_dict(),
            "committed": state.committed.to_dict(),
            "allocations": [a.to_dict() for a in state.allocations],
            "commitments": [c.to_dict() for c in state.commitments],
        }

    @actor.on("/dms/node/hardware/spec")
    async def spec(ctx: Context, body: Any) -> dict[str, Any]:
        ledger()
        assert node.hardware is not None
        return node.hardware.to_dict() | {"executors": node.executor_status()}

    @actor.on("/dms/node/hardware/usage", concurrent=True)
    async def hardware_usage(ctx: Context, body: Any) -> dict[str, Any]:
        return (await usage(node.config.work_dir)).to_dict()


def _share(body: Any, node: Node) -> Resources:
    """The share asked for, in machine units; GPUs resolved against the machine's."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a map: {cpu_cores, ram, disk, gpus?}")
    cores = body.get("cpu_cores")
    if not isinstance(cores, int | float) or isinstance(cores, bool):
        raise BadRequest("'cpu_cores' must be a number")
    for key in ("ram", "disk"):
        if key not in body:
            raise BadRequest(f"'{key}' is missing (bytes, or text such as \"8GiB\")")
    machine = node.hardware.resources if node.hardware is not None else Resources()
    return Resources(
        cpu_cores=float(cores),
        cpu_hz=machine.cpu_hz,
        ram=parse_bytes(body["ram"]),
        disk=parse_bytes(body["disk"]),
        gpus=_gpus(body.get("gpus", []), machine),
    )


def _gpus(names: Any, machine: Resources) -> tuple[Gpu, ...]:
    if not isinstance(names, list):
        raise BadRequest("'gpus' must be a list of GPU keys (\"nvidia:0\") or indices")
    chosen: list[Gpu] = []
    for name in names:
        if isinstance(name, int) and not isinstance(name, bool):
            matches = [g for g in machine.gpus if g.index == name]
            if len(matches) > 1:
                keys = ", ".join(g.key for g in matches)
                raise BadRequest(f"GPU index {name} is ambiguous here ({keys}): name it by key")
        elif isinstance(name, str):
            matches = [g for g in machine.gpus if g.key == name]
        else:
            raise BadRequest(f"not a GPU key or index: {name!r}")
        if not matches:
            have = ", ".join(g.key for g in machine.gpus) or "no GPU"
            raise BadRequest(f"GPU {name} is not on this machine (it has {have})")
        chosen.append(matches[0])
    return tuple(chosen)
