"""AMD GPUs, as ``rocm-smi`` lists them.

``rocm-smi --showproductname --showuniqueid --showmeminfo vram --json`` prints one JSON object
with a ``cardN`` entry per GPU (N is rocm-smi's device index) and sometimes a ``system`` entry.
Every value is a string. The keys read here:

- ``Card Series`` (``Card series`` before ROCm 6; falling back to ``Card Model``): the model;
- ``VRAM Total Memory (B)``: memory in bytes;
- ``Unique ID``: kept as the GPU's uuid (``N/A`` on some cards).

Some versions print a warning line before the JSON (a card in a low-power state): lines before
the first ``{`` are skipped. Without the amdgpu driver rocm-smi prints nothing on standard output
(and exits 0): no GPU.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from ._model import Gpu
from ._probe import UnexpectedOutput, count, run_tool

__all__ = ["COMMAND", "parse_rocm_smi", "probe"]

TOOL: Final = "rocm-smi"
COMMAND: Final = (TOOL, "--showproductname", "--showuniqueid", "--showmeminfo", "vram", "--json")
_CARD: Final = re.compile(r"card([0-9]+)", re.ASCII)
_VRAM: Final = re.compile(r"vram total memory \((b|kib|mib|gib)\)", re.ASCII)
_UNIT: Final[Mapping[str, int]] = {"b": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_NOT_AVAILABLE: Final = ("", "N/A", "n/a", "unknown")


def parse_rocm_smi(text: str) -> list[Gpu]:
    """The GPUs in ``rocm-smi``'s JSON answer; :class:`UnexpectedOutput` if it is not that."""
    start = _json_start(text)
    if start is None:
        if text.strip():
            raise UnexpectedOutput(f"{TOOL} printed no JSON object: {text.strip()[:200]!r}")
        return []
    try:
        document = json.loads(text[start:])
    except (ValueError, RecursionError) as exc:
        raise UnexpectedOutput(f"{TOOL} printed malformed JSON ({exc})") from None
    if not isinstance(document, dict):
        raise UnexpectedOutput(f"{TOOL} printed JSON that is not an object")
    gpus = []
    for key, card in document.items():
        match = _CARD.fullmatch(key)
        if match is None:
            continue  # "system" and anything else that is not a card
        if not isinstance(card, dict):
            raise UnexpectedOutput(f"{TOOL}: {key} is not an object")
        gpus.append(_gpu(count(match.group(1), f"{TOOL}: {key}"), key, card))
    return sorted(gpus, key=lambda g: g.index)


def _json_start(text: str) -> int | None:
    """Where the JSON object begins: the first line that starts with ``{``."""
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("{"):
            return offset
        offset += len(line)
    return None


def _gpu(index: int, key: str, card: Mapping[str, Any]) -> Gpu:
    fields = {str(k).strip().lower(): v for k, v in card.items()}
    model = _text(fields, "card series") or _text(fields, "card model")
    return Gpu(
        vendor="amd",
        index=index,
        model=model,
        vram=_vram(key, fields),
        uuid=_text(fields, "unique id"),
    )


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or value.strip() in _NOT_AVAILABLE:
        return ""
    return value.strip()


def _vram(key: str, fields: Mapping[str, Any]) -> int:
    for name, value in fields.items():
        match = _VRAM.fullmatch(name)
        if match is None:
            continue
        text = str(value).strip()
        if text in _NOT_AVAILABLE:
            return 0
        return count(text, f"{TOOL}: {key} VRAM total") * _UNIT[match.group(1)]
    return 0


async def probe(timeout: float) -> list[Gpu]:
    """The AMD GPUs of this machine; none when ``rocm-smi`` is not installed."""
    output = await run_tool(COMMAND, timeout=timeout)
    if output is None:
        return []
    return parse_rocm_smi(output.check().stdout)
