"""The UCAN policy language: parsing into a typed tree, and evaluation against ``args``.

A policy is a list of statements, all of which must hold. Statements (UCAN Delegation §Policy)::

    ["==", sel, value]   ["!=", sel, value]          deep equality (1 == 1.0; true != 1)
    ["<", sel, n] ["<=", sel, n] [">", sel, n] [">=", sel, n]   numbers only
    ["like", sel, "glob*"]                            strings only; "\\*" is a literal star
    ["not", stmt]  ["and", [stmt, ...]]  ["or", [stmt, ...]]
    ["all", sel, stmt]  ["any", sel, stmt]           over the values of a list or map

Policies are parsed once, when a delegation is issued or decoded, so a malformed policy is an
error about the token (:class:`InvalidPolicy`), never a surprise at invocation time. Evaluation
never raises: a selector that does not resolve makes its statement false; comparing, matching or
quantifying over a value of the wrong kind is false. ``and []`` and ``or []`` are true (the
spec says so); ``all`` over an empty collection is true and ``any`` false (plain logic: the spec
is silent there, and refusing is the safe side for ``any``).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias, final

from ._errors import InvalidPolicy
from ._ipld import MAX_DEPTH, Ipld, ipld_equal, is_ipld, is_number, normalise
from ._selector import Selector, Unresolved

__all__ = [
    "AllOf",
    "And",
    "AnyOf",
    "Equality",
    "Inequality",
    "Like",
    "Not",
    "Or",
    "Policy",
    "Statement",
    "glob_match",
]

EqualityOp: TypeAlias = Literal["==", "!="]
InequalityOp: TypeAlias = Literal["<", "<=", ">", ">="]

_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@final
@dataclass(frozen=True, slots=True)
class Equality:
    """``["==", sel, value]`` or ``["!=", sel, value]``; ``!=`` is ``not ==``."""

    op: EqualityOp
    selector: Selector
    value: Ipld

    def evaluate(self, args: object) -> bool:
        """Whether the statement holds for ``args``."""
        found = self.selector.select(args)
        equal = not isinstance(found, Unresolved) and ipld_equal(found, self.value)
        return equal if self.op == "==" else not equal

    def to_ipld(self) -> list[Ipld]:
        """The statement as the IPLD list it was parsed from."""
        return [self.op, self.selector.text, self.value]


@final
@dataclass(frozen=True, slots=True)
class Inequality:
    """``[op, sel, number]``: a numeric comparison, false for anything that is not a number."""

    op: InequalityOp
    selector: Selector
    value: int | float

    def evaluate(self, args: object) -> bool:
        """Whether the statement holds for ``args``."""
        found = self.selector.select(args)
        return is_number(found) and _COMPARE[self.op](found, self.value)

    def to_ipld(self) -> list[Ipld]:
        """The statement as the IPLD list it was parsed from."""
        return [self.op, self.selector.text, self.value]


@final
@dataclass(frozen=True, slots=True)
class Like:
    """``["like", sel, pattern]``: glob matching with ``*``; ``\\*`` matches a literal ``*``."""

    selector: Selector
    pattern: str
    parts: tuple[str, ...] = field(repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        if not self.parts:
            object.__setattr__(self, "parts", _split_glob(self.pattern))

    def evaluate(self, args: object) -> bool:
        """Whether the statement holds for ``args``."""
        found = self.selector.select(args)
        return isinstance(found, str) and _match_parts(self.parts, found)

    def to_ipld(self) -> list[Ipld]:
        """The statement as the IPLD list it was parsed from."""
        return ["like", self.selector.text, self.pattern]


@final
@dataclass(frozen=True, slots=True)
class Not:
    """``["not", stmt]``."""

    statement: Statement

    def evaluate(self, args: object) -> bool:
        """Whether the statement holds for ``args``."""
        return not self.statement.evaluate(args)

    def to_ipld(self) -> list[Ipld]:
        """The statement as the IPLD list it was parsed from."""
        return ["not", self.statement.to_ipld()]


@final
@dataclass(frozen=True, slots=True)
class And:
    """``["and", [stmt, ...]]``: all hold; true when empty."""

    statements: tuple[Statement, ...]

    def evaluate(self, args: object) -> bool:
        """Whether the statement holds for ``args``."""
        return all(s.evaluate(args) for s in self.statements)

    def to_ipld(self) -> list[Ipld]:
        """The statement as the IPLD list it was parsed from."""
        return ["and", [s.to_ipld() for s in self.statements]]


@final
@dataclass(frozen=True, slots=True)
class Or:
    """``["or", [stmt, ...]]``: at least one holds; true when empty (as the spec says)."""

    statements: tuple[Statement, ...]

    def evaluate(self, args: object) -> bool:
        """Whether the statement holds for ``args``."""
        return not self.statements or any(s.evaluate(args) for s in self.statements)

    def to_ipld(self) -> list[Ipld]:
        """The statement as the IPLD list it was parsed from."""
        return ["or", [s.to_ipld() for s in self.statements]]


@final
@dataclass(frozen=True, slots=True)
class AllOf:
    """``["all", sel, stmt]``: the statement holds for every value of the selected collection."""

    selector: Selector
    statement: Statement

    def evaluate(self, args: object) -> bool:
        """Whether the statement holds for ``args``."""
        items = _collection(self.selector.select(args))
        return items is not None and all(self.statement.evaluate(item) for item in items)

    def to_ipld(self) -> list[Ipld]:
        """The statement as the IPLD list it was parsed from."""
        return ["all", self.selector.text, self.statement.to_ipld()]


@final
@dataclass(frozen=True, slots=True)
class AnyOf:
    """``["any", sel, stmt]``: the statement holds for some value of the selected collection."""

    selector: Selector
    statement: Statement

    def evaluate(self, args: object) -> bool:
        """Whether the statement holds for ``args``."""
        items = _collection(self.selector.select(args))
        return items is not None and any(self.statement.evaluate(item) for item in items)

    def to_ipld(self) -> list[Ipld]:
        """The statement as the IPLD list it was parsed from."""
        return ["any", self.selector.text, self.statement.to_ipld()]


Statement: TypeAlias = Equality | Inequality | Like | Not | And | Or | AllOf | AnyOf
_STATEMENT_TYPES: Final = (Equality, Inequality, Like, Not, And, Or, AllOf, AnyOf)


@final
@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed policy: statements that must all hold on an invocation's ``args``."""

    statements: tuple[Statement, ...] = ()

    @classmethod
    def parse(cls, value: object) -> Policy:
        """Parse the IPLD form (a list of statements, each a list or an already parsed
        statement); a :class:`Policy` is returned as is."""
        if isinstance(value, Policy):
            return value
        if not isinstance(value, list | tuple):
            raise InvalidPolicy(f"a policy is a list of statements, got {type(value).__name__}")
        return cls(tuple(_parse_statement(item, 1) for item in value))

    def matches(self, args: object) -> bool:
        """Whether every statement holds for ``args``."""
        return all(s.evaluate(args) for s in self.statements)

    def first_failure(self, args: object) -> Statement | None:
        """The first top-level statement that does not hold for ``args``, or ``None``."""
        for statement in self.statements:
            if not statement.evaluate(args):
                return statement
        return None

    def to_ipld(self) -> list[Ipld]:
        """The IPLD form, as written in a token's ``pol`` field."""
        return [s.to_ipld() for s in self.statements]

    def __iter__(self) -> Iterator[Statement]:
        return iter(self.statements)

    def __len__(self) -> int:
        return len(self.statements)

    def __bool__(self) -> bool:
        return bool(self.statements)


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches the ``like`` pattern (``*`` any run, ``\\*`` a literal star)."""
    return _match_parts(_split_glob(pattern), text)


def _parse_statement(raw: object, depth: int) -> Statement:
    if depth > MAX_DEPTH:
        raise InvalidPolicy(f"policy is nested deeper than {MAX_DEPTH} levels")
    if isinstance(raw, _STATEMENT_TYPES):
        return raw
    if not isinstance(raw, list | tuple) or not raw or not isinstance(raw[0], str):
        raise InvalidPolicy(f"a statement is a list starting with an operator, got {_show(raw)}")
    op = raw[0]
    if op in ("==", "!="):
        _arity(raw, 3)
        value = normalise(raw[2])
        if not is_ipld(value):
            raise InvalidPolicy(f"{op!r} compares with an IPLD value, got {_show(raw[2])}")
        return Equality("==" if op == "==" else "!=", Selector.parse(raw[1]), value)
    if op in _COMPARE:
        _arity(raw, 3)
        number = raw[2]
        if not is_number(number) or not is_ipld(number):
            raise InvalidPolicy(f"{op!r} compares with a number, got {_show(number)}")
        return Inequality(_INEQUALITY_OPS[op], Selector.parse(raw[1]), raw[2])
    if op == "like":
        _arity(raw, 3)
        if not isinstance(raw[2], str):
            raise InvalidPolicy(f"'like' takes a string pattern, got {_show(raw[2])}")
        return Like(Selector.parse(raw[1]), raw[2])
    if op == "not":
        _arity(raw, 2)
        return Not(_parse_statement(raw[1], depth + 1))
    if op in ("and", "or"):
        _arity(raw, 2)
        if not isinstance(raw[1], list | tuple):
            raise InvalidPolicy(f"{op!r} takes a list of statements, got {_show(raw[1])}")
        inner = tuple(_parse_statement(item, depth + 1) for item in raw[1])
        return And(inner) if op == "and" else Or(inner)
    if op in ("all", "any"):
        _arity(raw, 3)
        selector = Selector.parse(raw[1])
        statement = _parse_statement(raw[2], depth + 1)
        return AllOf(selector, statement) if op == "all" else AnyOf(selector, statement)
    raise InvalidPolicy(f"unknown policy operator {op!r}")


_INEQUALITY_OPS: Final[dict[str, InequalityOp]] = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _arity(raw: Sequence[object], size: int) -> None:
    if len(raw) != size:
        raise InvalidPolicy(f"{raw[0]!r} takes {size - 1} argument(s), got {len(raw) - 1}")


def _collection(value: object) -> Iterable[object] | None:
    if isinstance(value, Mapping):
        return value.values()
    if isinstance(value, list | tuple):
        return value
    return None


def _split_glob(pattern: str) -> tuple[str, ...]:
    """Split a pattern at its unescaped stars into literal parts (``\\*`` becomes ``*``)."""
    parts: list[str] = []
    current: list[str] = []
    pos = 0
    while pos < len(pattern):
        char = pattern[pos]
        if char == "\\" and pattern.startswith("*", pos + 1):
            current.append("*")
            pos += 2
            continue
        if char == "*":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        pos += 1
    parts.append("".join(current))
    return tuple(parts)


def _match_parts(parts: tuple[str, ...], text: str) -> bool:
    """Match literal parts separated by wildcards, in linear time (no regex backtracking)."""
    if len(parts) == 1:
        return text == parts[0]
    head, *middle, tail = parts
    if len(text) < len(head) + len(tail) or not text.startswith(head) or not text.endswith(tail):
        return False
    pos, end = len(head), len(text) - len(tail)
    for part in middle:
        found = text.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return True


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"
