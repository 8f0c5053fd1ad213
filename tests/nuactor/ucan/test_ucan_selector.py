"""Selectors: parsing and resolution, including the spec's worked examples."""

from __future__ import annotations

from typing import Any

import pytest

from nuactor.ucan import UNRESOLVED, InvalidPolicy, Selector
from nuactor.ucan._selector import FieldSegment, IndexSegment, IterateSegment, SliceSegment

ARGS: dict[str, Any] = {
    "from": "alice@example.com",
    "to": ["bob@example.com", "carol@not.example.com", "dan@example.com"],
    "cc": ["fraud@example.com"],
    "title": "Meeting Confirmation",
    "body": "I'll see you on Tuesday",
}


def select(selector: str, value: Any) -> Any:
    return Selector.parse(selector).select(value)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (".", ARGS),
        (".title", "Meeting Confirmation"),
        (".cc", ["fraud@example.com"]),
        (".to[1]", "carol@not.example.com"),
        (".to[-1]", "dan@example.com"),
        (".to[99]?", None),
        (".to[99]", UNRESOLVED),
    ],
)
def test_the_spec_table(selector: str, expected: Any) -> None:
    assert select(selector, ARGS) == expected


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        (".", ()),
        (".foo", (FieldSegment("foo"),)),
        (".bar0_", (FieldSegment("bar0_"),)),
        ('.["."]', (FieldSegment("."),)),
        ('.["$_*"]', (FieldSegment("$_*"),)),
        ('.["a\\"b"]', (FieldSegment('a"b'),)),
        (".[0]", (IndexSegment(0),)),
        (".a[-42]", (FieldSegment("a"), IndexSegment(-42))),
        (".a[7:11]", (FieldSegment("a"), SliceSegment(7, 11))),
        (".a[2:]", (FieldSegment("a"), SliceSegment(2, None))),
        (".a[:42]", (FieldSegment("a"), SliceSegment(None, 42))),
        (".a[0:-2]", (FieldSegment("a"), SliceSegment(0, -2))),
        (".a[]", (FieldSegment("a"), IterateSegment())),
        (".[]", (IterateSegment(),)),
        (".a[].b", (FieldSegment("a"), IterateSegment(), FieldSegment("b"))),
        (".foo?", (FieldSegment("foo", optional=True),)),
        (".foo???", (FieldSegment("foo", optional=True),)),
        ('.["nope"]?', (FieldSegment("nope", optional=True),)),
        (
            ".a.b[0]?.c",
            (FieldSegment("a"), FieldSegment("b"), IndexSegment(0, True), FieldSegment("c")),
        ),
        (".a.[0]", (FieldSegment("a"), IndexSegment(0))),
    ],
)
def test_parse(text: str, segments: tuple[Any, ...]) -> None:
    selector = Selector.parse(text)
    assert selector.segments == segments
    assert str(selector) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "foo",
        "..",
        "..foo",
        ".foo..bar",
        ".foo.",
        ".1abc",
        ".foo bar",
        ".[",
        ".[abc]",
        ".[1.5]",
        '.["unterminated]',
        '.["a"',
        ".[1:2:3]",
        ".a[0]b",
        ".[" + "9" * 40 + "]",
        ".-",
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidPolicy):
        Selector.parse(text)


def test_parse_rejects_non_strings_and_huge_selectors() -> None:
    with pytest.raises(InvalidPolicy):
        Selector.parse(42)
    with pytest.raises(InvalidPolicy):
        Selector.parse("." + "a" * 5000)


def test_missing_map_key_is_null_but_nesting_through_it_fails() -> None:
    assert select(".missing", {}) is None
    assert select(".missing.deeper", {}) is UNRESOLVED
    assert select(".missing?.deeper", {}) is UNRESOLVED  # the later segment is not optional
    assert select(".missing.deeper?", {}) is None


def test_resolution_returns_early_even_if_a_later_segment_is_optional() -> None:
    # ".a" is a string, so ".a.b" fails at ".b"; "?" on ".c" after it cannot rescue it.
    assert select(".a.b.c?", {"a": "text"}) is UNRESOLVED
    assert select(".a.b?.c", {"a": "text"}) is None


def test_field_of_non_map_fails() -> None:
    for value in ([1], "abc", 3, None, True, b"xy"):
        assert select(".a", value) is UNRESOLVED
        assert select(".a?", value) is None


def test_index_on_lists_and_bytes_only() -> None:
    assert select(".[3]", b"\xd6\xa9\xc1\x8c\xf8\xc4") == 0x8C  # the spec's bytes example
    assert select(".[-1]", [1, 2, 3]) == 3
    assert select(".[-4]", [1, 2, 3]) is UNRESOLVED
    assert select(".[3]", [1, 2, 3]) is UNRESOLVED
    assert select(".[0]", "abc") is UNRESOLVED
    assert select(".[0]", {"0": 1}) is UNRESOLVED
    assert select(".[0]?", {"0": 1}) is None


def test_slices() -> None:
    assert select(".[1:3]", [0, 1, 2, 3]) == [1, 2]
    assert select(".[2:]", [0, 1, 2, 3]) == [2, 3]
    assert select(".[:-1]", [0, 1, 2, 3]) == [0, 1, 2]
    assert select(".[10:20]", [0, 1]) == []
    assert select(".[1:3]", b"abcd") == b"bc"
    assert select(".[1:3]", "abcd") == "bc"
    assert select(".[1:3]", {"a": 1}) is UNRESOLVED
    assert select(".[1:3]", 5) is UNRESOLVED


def test_iterator() -> None:
    assert select(".[]", [1, 2]) == [1, 2]
    assert select(".[]", {"a": 1, "b": 2}) == [1, 2]
    assert select(".[]", b"\x01\x02") == [1, 2]
    assert select(".a[].b", {"a": [{"b": 1}, {"b": 2}, {"c": 3}]}) == [1, 2, None]
    assert select(".a[].b", {"a": [{"b": 1}, 7]}) is UNRESOLVED
    assert select(".a[].b?", {"a": [{"b": 1}, 7]}) == [1, None]
    assert select(".[]", 5) is UNRESOLVED
    assert select(".[]?", 5) is None


def test_quoted_keys_select_anything() -> None:
    value = {".": 1, "$_*": 2, "1": 3, "with space": 4}
    assert select('.["."]', value) == 1
    assert select('.["$_*"]', value) == 2
    assert select('.["1"]', value) == 3
    assert select('.["with space"]', value) == 4
