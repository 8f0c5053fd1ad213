"""NVIDIA GPUs, as ``nvidia-smi`` lists them.

``nvidia-smi --query-gpu=index,uuid,name,memory.total --format=csv,noheader,nounits`` prints one
line per GPU: ``0, GPU-5e0b…, NVIDIA GeForce RTX 3090, 24576`` (memory in MiB; ``24576 MiB``
without ``nounits``; ``[N/A]`` where the GPU has no memory of its own, read as 0). With no GPU
it prints "No devices were found" (and exits 6): that is no GPU, not a failure.
"""

from __future__ import annotations

import re
from typing import Final

from ._model import Gpu
from ._probe import UnexpectedOutput, count, run_tool

__all__ = ["COMMAND", "parse_nvidia_smi", "probe"]

TOOL: Final = "nvidia-smi"
COMMAND: Final = (
    TOOL,
    "--query-gpu=index,uuid,name,memory.total",
    "--format=csv,noheader,nounits",
)
_NO_DEVICE: Final = "No devices were found"
_MIB: Final = 1024**2
_MEMORY: Final = re.compile(r"([0-9]+)(?:\s*MiB)?", re.ASCII)
_NOT_AVAILABLE: Final = ("[N/A]", "[Not Supported]", "N/A")


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """The GPUs in ``nvidia-smi``'s CSV answer; :class:`UnexpectedOutput` on any other line."""
    if _NO_DEVICE in text:
        return []
    gpus: list[Gpu] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            gpus.append(_parse_line(number, line))
    indexes = [g.index for g in gpus]
    if len(set(indexes)) != len(indexes):
        raise UnexpectedOutput(f"{TOOL} listed a GPU index twice: {indexes}")
    return sorted(gpus, key=lambda g: g.index)


def _parse_line(number: int, line: str) -> Gpu:
    fields = [f.strip() for f in line.split(",")]
    if len(fields) < 4:
        raise UnexpectedOutput(f"{TOOL} line {number} is not 'index, uuid, name, memory': {line!r}")
    # A name with a comma in it would split in two: the name is whatever lies between.
    index, uuid, name, memory = fields[0], fields[1], ", ".join(fields[2:-1]), fields[-1]
    if not name:
        raise UnexpectedOutput(f"{TOOL} line {number}: the GPU has no name")
    return Gpu(
        vendor="nvidia",
        index=count(index, f"{TOOL} line {number}: the index"),
        model=name,
        vram=_vram(number, memory),
        uuid="" if uuid in _NOT_AVAILABLE else uuid,
    )


def _vram(number: int, memory: str) -> int:
    if memory in _NOT_AVAILABLE:
        return 0
    match = _MEMORY.fullmatch(memory)
    if match is None:
        raise UnexpectedOutput(f"{TOOL} line {number}: memory {memory!r} is not a number of MiB")
    return count(match.group(1), f"{TOOL} line {number}: the memory") * _MIB


async def probe(timeout: float) -> list[Gpu]:
    """The NVIDIA GPUs of this machine; none when ``nvidia-smi`` is not installed."""
    output = await run_tool(COMMAND, timeout=timeout)
    if output is None:
        return []
    if output.returncode != 0 and _NO_DEVICE in output.stdout + output.stderr:
        return []
    return parse_nvidia_smi(output.check().stdout)
