"""The units of an ensemble file, read and written back exactly.

Sizes and clocks are read by :mod:`dmsnode.resources` (``parse_bytes``, ``parse_hz``) with
NuNet's defaults: a bare number is GiB for RAM, disk and VRAM, GHz for clocks. Durations are
Go's (``30s``, ``5m``, ``1h30m``, ``250ms``; a bare number is seconds), kept to the millisecond.
Round trip time is in milliseconds and bandwidth in bits per second, as in NuNet. Writing back
picks the largest unit that keeps the amount exact, so that reading what was written gives the
same amount.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from ..errors import BadRequest
from ..resources import parse_bytes, parse_hz

__all__ = [
    "MAX_SECONDS",
    "exact_bytes",
    "exact_duration",
    "exact_hz",
    "parse_bandwidth",
    "parse_clock",
    "parse_duration",
    "parse_rtt",
    "parse_size",
]

#: Longer durations are refused: ten years is beyond any interval or run time.
MAX_SECONDS: Final = 10 * 365 * 86400
_MAX_TEXT: Final = 64

_DURATION_UNITS: Final = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
}
_DURATION_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)")
_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_BANDWIDTH: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([kmgt]?)(?:bps|bit/s|b/s)", re.I)
_SI: Final = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_IEC_STEPS: Final = (("EiB", 2**60), ("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20))
_IEC_SMALL: Final = (("KiB", 2**10), ("B", 1))


def parse_size(value: object) -> int:
    """Bytes from ``8GiB``, ``512MiB``, ``1.5GB`` or a bare number of GiB."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest(f"must be a size such as 8GiB or 512MiB, got {_shown(value)}")
    return parse_bytes(value, default_unit="GiB")


def parse_clock(value: object) -> int:
    """Hz from ``2.4GHz``, ``800MHz`` or a bare number of GHz."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest(f"must be a clock speed such as 2.4GHz, got {_shown(value)}")
    return parse_hz(value, default_unit="GHz")


def parse_duration(value: object) -> float:
    """Seconds (to the millisecond) from ``30s``, ``5m``, ``1h30m``, ``250ms`` or a bare
    number of seconds."""
    seconds = _duration(value)
    if seconds > MAX_SECONDS:
        raise BadRequest(f"the duration {_shown(value)} is too long (at most ten years)")
    return float(seconds.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN))


def parse_rtt(value: object) -> int:
    """Milliseconds from a bare number of milliseconds (NuNet's unit) or a duration
    (``50ms``, ``0.2s``)."""
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        millis = _duration(value) * 1000
    else:
        millis = _decimal(value, "a round trip time in milliseconds, or a duration such as 50ms")
    if millis > MAX_SECONDS * 1000:
        raise BadRequest(f"the round trip time {_shown(value)} is too long")
    return int(millis.to_integral_value(rounding=ROUND_HALF_EVEN))


def parse_bandwidth(value: object) -> int:
    """Bits per second from a bare number (NuNet's unit) or ``100Mbps``, ``1Gbit/s``."""
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        match = _BANDWIDTH.fullmatch(value.strip()) if len(value) <= _MAX_TEXT else None
        if match is None:
            raise BadRequest(
                f"not a bandwidth: {_shown(value)} (write bits per second, or 100Mbps, 1Gbps)"
            )
        bits = Decimal(match.group(1)) * _SI[match.group(2).lower()]
    else:
        bits = _decimal(value, "a bandwidth in bits per second, or 100Mbps, 1Gbps")
    if bits > 2**63 - 1:
        raise BadRequest(f"the bandwidth {_shown(value)} is too large")
    return int(bits.to_integral_value(rounding=ROUND_HALF_EVEN))


def exact_bytes(n: int) -> str:
    """``8GiB``, ``1536MiB``, ``1000B``: the largest unit that divides the amount."""
    for unit, factor in (*_IEC_STEPS, *_IEC_SMALL):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


def exact_hz(n: int) -> str:
    """``2.4GHz``, ``800MHz``, ``1Hz``: exact, in GHz where the value has no more than nine
    decimals (always, as it is a whole number of Hz)."""
    for unit, factor in (("GHz", 10**9), ("MHz", 10**6)):
        if n >= factor:
            text = format(Decimal(n) / factor, "f")
            return (text.rstrip("0").rstrip(".") if "." in text else text) + unit
    return f"{n}Hz"


def exact_duration(seconds: float) -> str:
    """``30s``, ``1.5s``, ``0.25s``: seconds, to the millisecond."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text}s"


def _duration(value: object) -> Decimal:
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return Decimal(text)
        parts = _DURATION_PART.findall(text) if len(text) <= _MAX_TEXT else []
        if not parts or "".join(n + u for n, u in parts) != text:
            if text.startswith("-"):
                raise BadRequest(f"a duration cannot be negative, got {_shown(value)}")
            raise BadRequest(f"not a duration: {_shown(value)} (write 30s, 5m, 1h30m or 250ms)")
        return sum((Decimal(n) * _DURATION_UNITS[u] for n, u in parts), Decimal(0))
    return _decimal(value, "a duration such as 30s, 5m or 250ms")


def _decimal(value: object, what: str) -> Decimal:
    """A non-negative finite number (an int, a float or a numeral) as a Decimal."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest(f"must be {what}, got {_shown(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadRequest(f"must be a finite number, got {value!r}")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise BadRequest(f"must be {what}, got {_shown(value)}") from None
    if number < 0:
        raise BadRequest(f"cannot be negative, got {_shown(value)}")
    return number


def _shown(value: object) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value[:_MAX_TEXT])
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
