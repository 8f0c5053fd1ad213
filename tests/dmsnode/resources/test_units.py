"""Human units: parsing sizes and clocks, printing them back."""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmsnode.errors import BadRequest
from dmsnode.resources import format_bytes, format_cores, format_hz, parse_bytes, parse_hz

GiB = 1024**3
MiB = 1024**2
MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8GiB", 8 * GiB),
        ("8 GiB", 8 * GiB),
        ("8Gi", 8 * GiB),
        ("8gib", 8 * GiB),
        ("  8 GIB  ", 8 * GiB),
        ("1.5GiB", 3 * GiB // 2),
        ("512MiB", 512 * MiB),
        (".5KiB", 512),
        ("1KiB", 1024),
        ("2TiB", 2 * 1024**4),
        ("8G", 8 * 10**9),
        ("8GB", 8 * 10**9),
        ("8gb", 8 * 10**9),
        ("1.1KB", 1100),
        ("1k", 1000),
        ("3M", 3 * 10**6),
        ("512", 512),
        ("512B", 512),
        ("512 b", 512),
        ("0", 0),
        ("0.0GiB", 0),
        ("7.", 7),
        ("8EiB", None),  # too large: see below
    ],
)
def test_parse_bytes(text: str, expected: int | None) -> None:
    if expected is None:
        with pytest.raises(BadRequest, match="too large"):
            parse_bytes(text)
    else:
        assert parse_bytes(text) == expected


def test_parse_bytes_rounds_to_the_nearest_byte() -> None:
    assert parse_bytes("0.4") == 0
    assert parse_bytes("1.6") == 2
    assert parse_bytes("0.001KiB") == 1


def test_a_bare_number_is_in_the_default_unit() -> None:
    assert parse_bytes("8", default_unit="GiB") == 8 * GiB
    assert parse_bytes("1.5", default_unit="GiB") == 3 * GiB // 2
    assert parse_bytes(8, default_unit="GiB") == 8 * GiB
    assert parse_bytes(1.5, default_unit="GiB") == 3 * GiB // 2
    assert parse_bytes(4096) == 4096
    assert parse_bytes("512MiB", default_unit="GiB") == 512 * MiB  # an explicit unit wins
    with pytest.raises(ValueError, match="unknown default unit"):
        parse_bytes("8", default_unit="parsecs")


def test_the_largest_amount() -> None:
    assert parse_bytes(str(MAX)) == MAX
    assert parse_bytes("7EiB") == 7 * 1024**6
    with pytest.raises(BadRequest, match="too large"):
        parse_bytes(str(MAX + 1))
    with pytest.raises(BadRequest, match="too large"):
        parse_bytes(2**64)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("-1GiB", "negative"),
        ("-0", "negative"),
        (-5, "negative"),
        (-0.5, "negative"),
        ("nan", "not an amount of bytes: 'nan'"),
        ("inf", "'inf'"),
        (math.nan, "finite"),
        (math.inf, "finite"),
        ("", "not an amount of bytes: ''"),
        ("GiB", "'GiB'"),
        ("8 parsecs", "'8 parsecs'"),
        ("8 GiB GiB", "'8 GiB GiB'"),
        ("1e3", "'1e3'"),
        ("+5", "'+5'"),
        ("1,5GiB", "'1,5GiB'"),
        ("١٢", "'١٢'"),  # digits, but not ASCII ones
        ("8" * 70, "not an amount"),
        (None, "got None"),
        (True, "got True"),
        ([8], "got [8]"),
    ],
)
def test_parse_bytes_refuses_naming_the_value(value: object, says: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(says)):
        parse_bytes(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2.4GHz", 2_400_000_000),
        ("2400MHz", 2_400_000_000),
        ("2400 mhz", 2_400_000_000),
        ("800kHz", 800_000),
        ("3.5 GHz", 3_500_000_000),
        ("1000", 1000),
        ("1000Hz", 1000),
        (2_400_000_000, 2_400_000_000),
    ],
)
def test_parse_hz(value: str | int, expected: int) -> None:
    assert parse_hz(value) == expected


def test_parse_hz_default_unit_and_refusals() -> None:
    assert parse_hz("2.4", default_unit="GHz") == 2_400_000_000
    assert parse_hz(2400, default_unit="MHz") == 2_400_000_000
    for bad in ("2.4GiB", "fast", "-1GHz", "2.4 G"):
        with pytest.raises(BadRequest, match="clock speed"):
            parse_hz(bad)


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (999, "999 B"),
        (1000, "0.977 KiB"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (512 * MiB, "512 MiB"),
        (999 * MiB, "999 MiB"),
        (1000 * MiB, "0.977 GiB"),
        (8 * GiB, "8 GiB"),
        (3 * GiB // 2, "1.5 GiB"),
        (int(7.99 * GiB), "7.99 GiB"),
        (123_456_789_012, "115 GiB"),
        (24576 * MiB, "24 GiB"),
        (MAX, "8 EiB"),
        (-2 * GiB, "-2 GiB"),
    ],
)
def test_format_bytes(n: int, text: str) -> None:
    assert format_bytes(n) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 Hz"),
        (999, "999 Hz"),
        (2_400_000_000, "2.4 GHz"),
        (2_596_140_000, "2.6 GHz"),
        (800_000_000, "800 MHz"),
        (999_999, "1 MHz"),
        (3_456_789_000, "3.46 GHz"),
        (999_500_000_000_000, "1000 THz"),
        (12_345 * 10**12, "12345 THz"),
    ],
)
def test_format_hz(n: int, text: str) -> None:
    assert format_hz(n) == text


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (1, "1 core"),
        (1.0, "1 core"),
        (4, "4 cores"),
        (0.5, "0.5 cores"),
        (0.1 + 0.2, "0.3 cores"),
        (0, "0 cores"),
        (2.25, "2.25 cores"),
        (12.3456, "12.346 cores"),
    ],
)
def test_format_cores(x: float, text: str) -> None:
    assert format_cores(x) == text


# --- properties ----------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=7 * 1024**6))  # "8 EiB" (rounded up) is past MAX
def test_format_then_parse_bytes_is_within_rounding(n: int) -> None:
    back = parse_bytes(format_bytes(n))
    assert abs(back - n) <= n * 0.005 + 0.5  # three significant digits


@given(st.integers(min_value=0, max_value=10**16))
def test_format_then_parse_hz_is_within_rounding(n: int) -> None:
    back = parse_hz(format_hz(n))
    assert abs(back - n) <= n * 0.005 + 0.5


@given(st.integers(min_value=0, max_value=MAX))
def test_format_bytes_shows_at_most_three_significant_digits(n: int) -> None:
    number = format_bytes(n).split()[0]
    assert len(number.replace(".", "").lstrip("0")) <= 3


@given(st.one_of(st.text(max_size=40), st.floats(), st.integers(), st.none(), st.booleans()))
def test_parse_bytes_returns_a_size_or_raises_bad_request(value: object) -> None:
    for parse in (parse_bytes, parse_hz):
        try:
            result = parse(value)  # type: ignore[arg-type]
        except BadRequest as exc:
            refusal = str(exc)
        else:
            assert isinstance(result, int)
            assert 0 <= result <= MAX
            continue
        assert repr(value) in refusal  # the refusal names the value


FACTORS = {
    "": 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "k": 1000,
    "g": 1000**3,
    "gi": 1024**3,
}


@given(
    number=st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False),
    unit=st.sampled_from(sorted(FACTORS)),
    space=st.sampled_from(["", " "]),
)
def test_parse_bytes_of_number_and_unit(number: Decimal, unit: str, space: str) -> None:
    expected = int((number * FACTORS[unit]).to_integral_value(rounding=ROUND_HALF_EVEN))
    assert parse_bytes(f"{number:f}{space}{unit}") == expected
