"""The policy language: parsing into the typed tree, and evaluation semantics."""

from __future__ import annotations

from typing import Any

import pytest
from multiformats import CID, multihash

from nuactor.ucan import (
    AllOf,
    And,
    AnyOf,
    Equality,
    Inequality,
    InvalidPolicy,
    Like,
    Not,
    Or,
    Policy,
    glob_match,
    ipld_equal,
)

KATIE: dict[str, Any] = {"name": "Katie", "age": 35, "nationalities": ["Canadian", "South African"]}


def holds(statement: list[Any], args: Any) -> bool:
    return Policy.parse([statement]).matches(args)


def test_parse_builds_the_typed_tree() -> None:
    policy = Policy.parse(
        [
            ["==", ".a", 1],
            ["!=", ".a", None],
            ["<", ".n", 2.5],
            ["like", ".s", "x*"],
            ["not", ["==", ".a", 2]],
            ["and", [["==", ".a", 1]]],
            ["or", []],
            ["all", ".l", [">", ".", 0]],
            ["any", ".l", [">=", ".", 0]],
        ]
    )
    kinds = [type(s) for s in policy]
    assert kinds == [Equality, Equality, Inequality, Like, Not, And, Or, AllOf, AnyOf]
    assert len(policy) == 9
    assert Policy.parse(policy.to_ipld()) == policy
    assert Policy.parse(policy) is policy


def test_empty_policy_allows_everything() -> None:
    assert Policy.parse([]).matches({"anything": 1})
    assert not Policy()


@pytest.mark.parametrize(
    "raw",
    [
        "not a list",
        {"==": 1},
        [1],
        [[]],
        [[1, ".a", 1]],
        [["=~", ".a", 1]],
        [["==", ".a"]],
        [["==", ".a", 1, 2]],
        [["==", "a", 1]],
        [["==", ".a", {1: 2}]],
        [["==", ".a", float("nan")]],
        [["<", ".a", "1"]],
        [["<", ".a", True]],
        [["<", ".a", None]],
        [["like", ".a", 1]],
        [["not"]],
        [["not", "x"]],
        [["and", ["==", ".a", 1]]],
        [["and", "x"]],
        [["or", [["bogus"]]]],
        [["all", ".a"]],
        [["all", ".a", [["==", ".", 1]]]],
        [["any", 5, ["==", ".", 1]]],
    ],
)
def test_malformed_policies_are_rejected(raw: Any) -> None:
    with pytest.raises(InvalidPolicy):
        Policy.parse(raw)


def test_deep_nesting_is_rejected_not_a_recursion_error() -> None:
    statement: list[Any] = ["==", ".a", 1]
    for _ in range(500):
        statement = ["not", statement]
    with pytest.raises(InvalidPolicy, match="deeper"):
        Policy.parse([statement])


def test_equality_is_deep_and_numeric_kind_agnostic() -> None:
    args = {"a": [1, 2, {"b": 3}], "b": 1, "t": True, "z": 0}
    assert holds(["==", ".a", [1, 2, {"b": 3}]], args)
    assert holds(["==", ".a", [1.0, 2, {"b": 3.0}]], args)
    assert holds(["==", ".b", 1.0], args)
    assert not holds(["==", ".b", True], args)  # Python says True == 1; IPLD does not
    assert not holds(["==", ".t", 1], args)
    assert not holds(["==", ".z", False], args)
    assert not holds(["==", ".a", [1, 2]], args)
    assert not holds(["==", ".a", [1, 2, {"b": 3, "c": 4}]], args)
    assert holds(["!=", ".b", "1"], args)


def test_equality_on_bytes_and_links() -> None:
    link = CID("base32", 1, "dag-cbor", multihash.digest(b"x", "sha2-256"))
    same = CID("base58btc", 1, "dag-cbor", multihash.digest(b"x", "sha2-256"))
    assert holds(["==", ".c", same], {"c": link})
    assert holds(["==", ".b", b"\x00"], {"b": b"\x00"})
    assert not holds(["==", ".b", [0]], {"b": b"\x00"})
    assert not holds(["==", ".b", "\x00"], {"b": b"\x00"})


def test_missing_and_unresolved_selectors() -> None:
    # A missing key selects null...
    assert holds(["==", ".missing", None], {})
    # ...but a path through it does not resolve, so the statement is false (and != is not ==).
    assert not holds(["==", ".missing.deeper", None], {})
    assert holds(["!=", ".missing.deeper", None], {})
    assert not holds([">", ".missing", 0], {})
    assert not holds(["like", ".missing", "*"], {})
    assert not holds(["all", ".missing", ["==", ".", 1]], {})
    assert not holds(["any", ".missing", ["==", ".", 1]], {})


def test_inequalities_are_numeric_only() -> None:
    args = {"n": 5, "f": 2.5, "s": "10", "b": True, "l": [1]}
    assert holds(["<", ".n", 6], args)
    assert holds(["<=", ".n", 5.0], args)
    assert holds([">", ".f", 2], args)
    assert holds([">=", ".f", 2.5], args)
    assert not holds([">", ".n", 5], args)
    for field in (".s", ".b", ".l", ".missing"):
        for op in ("<", "<=", ">", ">="):
            assert not holds([op, field, 0], args)
            assert not holds([op, field, 100], args)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*@example.com", "bob@example.com", True),
        ("*@example.com", "carol@elsewhere.example.org", False),
        ("*", "", True),
        ("", "", True),
        ("", "a", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("a*a", "a", False),
        ("a*a", "aa", True),
        ("**", "anything", True),
        ("\\*", "*", True),
        ("\\*", "x", False),
        ("a\\*b*", "a*bcd", True),
        ("a\\b", "a\\b", True),
        ("Alice\\*, Bob*, Carol.", "Alice*, Bob*, Carol.", True),
        ("Alice\\*, Bob*, Carol.", "Alice*, Bob*, Carol!", False),
    ],
)
def test_glob(pattern: str, text: str, expected: bool) -> None:
    assert glob_match(pattern, text) is expected
    assert holds(["like", ".", pattern], text) is expected


def test_like_on_non_strings_is_false() -> None:
    for value in (1, None, b"abc", ["abc"], {"a": "abc"}):
        assert not holds(["like", ".", "*"], value)


def test_connectives() -> None:
    assert holds(["and", []], KATIE)
    assert holds(["or", []], KATIE)
    assert holds(["and", [["==", ".name", "Katie"], ["==", ".age", 35]]], KATIE)
    assert not holds(["and", [["==", ".name", "Katie"], ["==", ".age", 36]]], KATIE)
    assert holds(["or", [["==", ".name", "Nope"], [">", ".age", 30]]], KATIE)
    assert not holds(["or", [["==", ".name", "Nope"], [">", ".age", 45]]], KATIE)
    assert holds(["not", ["==", ".name", "Nope"]], KATIE)
    assert not holds(["not", ["not", ["==", ".name", "Nope"]]], KATIE)


def test_quantifiers_over_lists_and_maps() -> None:
    args = {"a": [{"b": 1}, {"b": 2}, {"z": [7, 8, 9]}]}
    assert not holds(["all", ".a", [">", ".b", 0]], args)  # the spec's example
    assert holds(["any", ".a", ["==", ".b", 2]], args)
    as_map = {"m": {"x": 1, "y": 2}}
    assert holds(["all", ".m", [">", ".", 0]], as_map)
    assert holds(["any", ".m", ["==", ".", 2]], as_map)
    assert not holds(["any", ".m", ["==", ".", 3]], as_map)


def test_quantifiers_on_empty_and_non_collections() -> None:
    assert holds(["all", ".l", ["==", ".", 1]], {"l": []})
    assert not holds(["any", ".l", ["==", ".", 1]], {"l": []})
    for value in ("abc", 1, None, b"ab"):
        assert not holds(["all", ".v", ["==", ".", 1]], {"v": value})
        assert not holds(["any", ".v", ["==", ".", 1]], {"v": value})


def test_nested_quantifiers() -> None:
    args = {
        "newsletters": {
            "christmas": {"recipients": [{"email": "a@x"}, {"email": "fraud@example.com"}]},
            "easter": {"recipients": [{"email": "fraud@example.com"}]},
        }
    }
    policy = ["all", ".newsletters", ["any", ".recipients", ["==", ".email", "fraud@example.com"]]]
    assert holds(policy, args)
    args["newsletters"]["easter"]["recipients"] = [{"email": "b@x"}]
    assert not holds(policy, args)


def test_first_failure_names_the_statement() -> None:
    policy = Policy.parse([["==", ".a", 1], [">", ".b", 2]])
    assert policy.first_failure({"a": 1, "b": 3}) is None
    failed = policy.first_failure({"a": 1, "b": 1})
    assert failed is not None
    assert failed.to_ipld() == [">", ".b", 2]


def test_ipld_equal_kinds() -> None:
    assert ipld_equal({"a": [1, 2.0]}, {"a": (1.0, 2)})
    assert not ipld_equal({"a": 1}, {"b": 1})
    assert not ipld_equal(None, False)
    assert not ipld_equal(0, None)
    assert not ipld_equal([], {})
    assert not ipld_equal("a", b"a")
    assert ipld_equal(None, None)
