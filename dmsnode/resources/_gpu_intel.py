"""Intel GPUs, as ``xpu-smi`` lists them.

``xpu-smi discovery --json`` lists the devices (``{"device_list": [{"device_id": 0,
"device_name": "Intel(R) Data Center GPU Max 1550", "uuid": …}, …]}``) but not their memory;
``xpu-smi discovery --device N --json`` gives one device's properties, among them
``memory_physical_size_byte`` (bytes, as a string). So the list is read first, then every
device's properties, concurrently. On failure xpu-smi prints ``{"error": …, "errno": …}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import trio

from ._model import Gpu
from ._probe import ToolFailed, UnexpectedOutput, count, run_tool

__all__ = ["LIST_COMMAND", "parse_xpu_smi_device", "parse_xpu_smi_discovery", "probe"]

TOOL: Final = "xpu-smi"
LIST_COMMAND: Final = (TOOL, "discovery", "--json")


def device_command(device_id: int) -> tuple[str, ...]:
    """The command that prints one device's properties."""
    return (TOOL, "discovery", "--device", str(device_id), "--json")


def parse_xpu_smi_discovery(text: str) -> list[Gpu]:
    """The devices in ``xpu-smi discovery --json`` (their ``vram`` is 0: the list lacks it)."""
    document = _object(text, "discovery")
    devices = document.get("device_list")
    if devices is None:
        return []
    if not isinstance(devices, list):
        raise UnexpectedOutput(f"{TOOL} discovery: device_list is not a list")
    gpus = [_gpu(device, f"device_list[{i}]", vram=0) for i, device in enumerate(devices)]
    indexes = [g.index for g in gpus]
    if len(set(indexes)) != len(indexes):
        raise UnexpectedOutput(f"{TOOL} discovery listed a device twice: {indexes}")
    return sorted(gpus, key=lambda g: g.index)


def parse_xpu_smi_device(text: str) -> Gpu:
    """One device from ``xpu-smi discovery --device N --json``, with its memory."""
    device = _object(text, "device")
    size = device.get("memory_physical_size_byte")
    if isinstance(size, bool) or not isinstance(size, str | int):
        raise UnexpectedOutput(f"{TOOL} device: no memory_physical_size_byte")
    vram = count(str(size), f"{TOOL} device: memory_physical_size_byte")
    return _gpu(device, "device", vram=vram)


def _object(text: str, what: str) -> Mapping[str, Any]:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UnexpectedOutput(f"{TOOL} {what}: malformed JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UnexpectedOutput(f"{TOOL} {what}: the JSON is not an object")
    if "error" in document:
        raise UnexpectedOutput(f"{TOOL} {what}: {document['error']}")
    return document


def _gpu(device: Any, where: str, *, vram: int) -> Gpu:
    if not isinstance(device, dict):
        raise UnexpectedOutput(f"{TOOL}: {where} is not an object")
    index = device.get("device_id")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise UnexpectedOutput(f"{TOOL}: {where}.device_id is not a device number: {index!r}")
    name = device.get("device_name")
    if not isinstance(name, str) or not name.strip():
        raise UnexpectedOutput(f"{TOOL}: {where} has no device_name")
    uuid = device.get("uuid")
    return Gpu(
        vendor="intel",
        index=index,
        model=name.strip(),
        vram=vram,
        uuid=uuid.strip() if isinstance(uuid, str) else "",
    )


async def probe(timeout: float) -> list[Gpu]:
    """The Intel GPUs of this machine; none when ``xpu-smi`` is not installed."""
    output = await run_tool(LIST_COMMAND, timeout=timeout)
    if output is None:
        return []
    listed = parse_xpu_smi_discovery(output.check(_error(output.stdout)).stdout)
    details: dict[int, Gpu] = {}
    failures: list[Exception] = []

    async def detail(index: int) -> None:
        try:
            answer = await run_tool(device_command(index), timeout=timeout)
            if answer is None:
                raise ToolFailed(f"{TOOL} disappeared while being asked about device {index}")
            gpu = parse_xpu_smi_device(answer.check(_error(answer.stdout)).stdout)
            if gpu.index != index:
                raise UnexpectedOutput(f"{TOOL} answered about device {gpu.index}, not {index}")
            details[index] = gpu
        except (ToolFailed, UnexpectedOutput) as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        for gpu in listed:
            nursery.start_soon(detail, gpu.index)
    if failures:
        raise failures[0]
    return [details[gpu.index] for gpu in listed]


def _error(stdout: str) -> str:
    """The ``error`` xpu-smi reports in its JSON, if it does (else "")."""
    try:
        document = json.loads(stdout)
    except (ValueError, RecursionError):
        return ""
    error = document.get("error") if isinstance(document, dict) else None
    return str(error) if error is not None else ""
