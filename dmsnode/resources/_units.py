"""Human units: read ``8GiB`` or ``2.4GHz`` from people, print bytes and Hz back to them.

Inside the code amounts are plain integers (bytes, Hz). The rules, in docs/resources.md:

- IEC suffixes are powers of 1024: ``Ki Mi Gi Ti Pi Ei``, with or without a trailing ``B``
  (``8GiB`` = ``8Gi`` = 8 × 2³⁰ bytes).
- SI suffixes are powers of 1000: ``K M G T P E``, with or without a trailing ``B``
  (``8GB`` = ``8G`` = 8 × 10⁹ bytes). Write ``GiB`` when you mean GiB.
- Case does not matter, a space may separate number and unit, decimals are allowed; the result
  is rounded to the nearest byte (or Hz). A bare number is in ``default_unit``.
- Anything else (garbage, a sign, NaN, infinity, more than 2⁶³ − 1) is a
  :class:`~dmsnode.errors.BadRequest` that names the value.

Printing picks the unit that keeps the number below 1000 and shows at most three significant
digits (``8 GiB``, ``1.5 GiB``, ``512 MiB``, ``2.4 GHz``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from ..errors import BadRequest

__all__ = ["format_bytes", "format_cores", "format_hz", "parse_bytes", "parse_hz"]

#: The largest amount accepted: what a signed 64-bit integer holds (SQLite, NuNet's Go side).
MAX_AMOUNT: Final = 2**63 - 1
#: Longer inputs are refused before any arithmetic (no one writes a size in 65 characters).
_MAX_TEXT: Final = 64

_IEC: Final = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_SI: Final = ("K", "M", "G", "T", "P", "E")

#: Units in lower case, with their factor: "b", "kib", "ki", "kb", "k", ...
_BYTE_UNITS: Final[Mapping[str, int]] = {
    "b": 1,
    **{p.lower() + s: 1024 ** (i + 1) for i, p in enumerate(_IEC) for s in ("", "b")},
    **{p.lower() + s: 1000 ** (i + 1) for i, p in enumerate(_SI) for s in ("", "b")},
}
_HZ_UNITS: Final[Mapping[str, int]] = {
    "hz": 1,
    "khz": 10**3,
    "mhz": 10**6,
    "ghz": 10**9,
    "thz": 10**12,
}
_AMOUNT: Final = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*", re.ASCII | re.I)


def parse_bytes(value: str | int | float, *, default_unit: str = "B") -> int:
    """An amount of bytes from ``8GiB``, ``8 GiB``, ``8G``, ``1.5GiB`` or ``512``; an int, a
    float or a number without a unit is in ``default_unit``."""
    return _parse(value, _BYTE_UNITS, default_unit, "an amount of bytes", "8GiB, 512MiB or 1.5GB")


def parse_hz(value: str | int | float, *, default_unit: str = "Hz") -> int:
    """A clock speed in Hz from ``2.4GHz``, ``2400MHz`` or ``2400000000``; an int, a float or a
    number without a unit is in ``default_unit``."""
    return _parse(value, _HZ_UNITS, default_unit, "a clock speed", "2.4GHz or 800MHz")


def _parse(
    value: object, units: Mapping[str, int], default_unit: str, what: str, examples: str
) -> int:
    default = units.get(default_unit.lower())
    if default is None:  # the caller's mistake, not the user's
        raise ValueError(f"unknown default unit {default_unit!r}")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest(f"{what} must be a number or a text such as {examples}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"{what} must be a finite number, got {value!r}")
    if isinstance(value, str):
        match = _AMOUNT.fullmatch(value) if len(value) <= _MAX_TEXT else None
        unit = match.group(2).lower() if match else ""
        factor = (units.get(unit) if unit else default) if match else None
        if match is None or factor is None:
            if value.strip().startswith("-"):
                raise BadRequest(f"{what} cannot be negative, got {value!r}")
            raise BadRequest(f"not {what}: {value!r} (write a number and a unit: {examples})")
        number = Decimal(match.group(1))
    else:
        number, factor = Decimal(value), default
    if number < 0:
        raise BadRequest(f"{what} cannot be negative, got {value!r}")
    amount = (number * factor).to_integral_value(rounding=ROUND_HALF_EVEN)
    if amount > MAX_AMOUNT:
        raise BadRequest(f"{what} is too large: {value!r} (at most {MAX_AMOUNT})")
    return int(amount)


# --- printing ------------------------------------------------------------------------------------

_BYTE_STEPS: Final = ("B", *(u + "B" for u in _IEC))
_HZ_STEPS: Final = ("Hz", "kHz", "MHz", "GHz", "THz")


def format_bytes(n: int) -> str:
    """``8 GiB``, ``1.5 GiB``, ``512 MiB``, ``999 B``: IEC units, three significant digits."""
    return _format(n, 1024, _BYTE_STEPS)


def format_hz(n: int) -> str:
    """``2.4 GHz``, ``800 MHz``: SI units, three significant digits."""
    return _format(n, 1000, _HZ_STEPS)


def format_cores(x: float) -> str:
    """``1 core``, ``4 cores``, ``0.5 cores`` (at most three decimals)."""
    text = f"{x:.3f}".rstrip("0").rstrip(".")
    if text == "-0":
        text = "0"
    return f"{text} core" if text == "1" else f"{text} cores"


def _format(n: int, base: int, steps: tuple[str, ...]) -> str:
    sign, size = ("-", -n) if n < 0 else ("", n)
    if size < 1000:
        return f"{sign}{size} {steps[0]}"
    step = 0
    value = float(size)
    # Move up while the number, once rounded to three significant digits, would reach 1000.
    while step < len(steps) - 1 and float(f"{value:.3g}") >= 1000:
        value /= base
        step += 1
    number = f"{value:.3g}" if value < 999.5 else f"{value:.0f}"  # past the largest unit
    return f"{sign}{number} {steps[step]}"
