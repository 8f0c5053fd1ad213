"""Policy selectors: the jq-like paths that pick a value out of an invocation's ``args``.

Grammar (UCAN Delegation §Selectors)::

    .                 identity
    .foo  .bar0_      field of a map (ASCII identifier)
    ["any key"]       field of a map by arbitrary key (a JSON string)
    [0]  [-1]         list (or bytes) element, negative from the end
    [2:5] [2:] [:-1]  slice of a list, bytes or string
    []                all values of a list or map (the rest of the path applies to each)
    ?                 after any segment: null instead of failure

A selector starts with ``.``; ``..`` never appears; ``???`` is the same as ``?``.

Resolution, left to right: a missing key on a map gives ``null``; any other failure (a field of a
non-map, an index out of range, an index of a non-list) fails the selection, unless the failing
segment is optional, in which case the whole selection is ``null`` at once. Failure is the
sentinel :data:`UNRESOLVED`, never an exception: the policy language says a statement whose
selector fails is false.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final, TypeAlias, final

from ._errors import InvalidPolicy

__all__ = [
    "UNRESOLVED",
    "FieldSegment",
    "IndexSegment",
    "IterateSegment",
    "Segment",
    "Selector",
    "SliceSegment",
    "Unresolved",
]


@final
class Unresolved:
    """The type of :data:`UNRESOLVED`: a selection that found nothing and was not optional."""

    _instance: Unresolved | None = None

    def __new__(cls) -> Unresolved:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNRESOLVED"


UNRESOLVED: Final = Unresolved()


@final
@dataclass(frozen=True, slots=True)
class FieldSegment:
    """``.name`` or ``["name"]``: a value of a map by key."""

    name: str
    optional: bool = False


@final
@dataclass(frozen=True, slots=True)
class IndexSegment:
    """``[i]``: an element of a list or a byte of bytes; negative counts from the end."""

    index: int
    optional: bool = False


@final
@dataclass(frozen=True, slots=True)
class SliceSegment:
    """``[a:b]``: a sub-list, sub-bytes or sub-string, with Python's clamping of bounds."""

    start: int | None
    stop: int | None
    optional: bool = False


@final
@dataclass(frozen=True, slots=True)
class IterateSegment:
    """``[]``: every value of a list or map; the rest of the selector applies to each."""

    optional: bool = False


Segment: TypeAlias = FieldSegment | IndexSegment | SliceSegment | IterateSegment

_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX: Final = re.compile(r"-?[0-9]{1,18}")
_SLICE: Final = re.compile(r"(-?[0-9]{1,18})?:(-?[0-9]{1,18})?")
MAX_SELECTOR_LENGTH: Final = 1024


@final
@dataclass(frozen=True, slots=True)
class Selector:
    """A parsed selector; ``text`` is the source, kept so policies re-encode byte for byte."""

    text: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, text: object) -> Selector:
        """Parse a selector string; raise :class:`InvalidPolicy` saying where it is wrong."""
        if not isinstance(text, str):
            raise InvalidPolicy(f"a selector is a string, got {type(text).__name__}")
        if len(text) > MAX_SELECTOR_LENGTH:
            raise InvalidPolicy(f"selector is longer than {MAX_SELECTOR_LENGTH} characters")
        return cls(text, _parse(text))

    def select(self, value: object) -> object:
        """The value at this path in ``value``, ``None`` for null, or :data:`UNRESOLVED`.

        ``value`` is normally IPLD data, but any Python value is safe: nothing here raises."""
        return _resolve(self.segments, 0, value)

    def __str__(self) -> str:
        return self.text


def _parse(text: str) -> tuple[Segment, ...]:
    if not text.startswith("."):
        raise InvalidPolicy(f"selector {text!r} must start with '.'")
    segments: list[Segment] = []
    after_dot = True
    pos, end = 1, len(text)
    while pos < end:
        char = text[pos]
        if char == "?":
            if segments:
                segments[-1] = replace(segments[-1], optional=True)
            pos += 1
            after_dot = False
        elif char == ".":
            if after_dot:
                raise InvalidPolicy(f"selector {text!r} has '..' at {pos}; use one '.'")
            if pos + 1 == end:
                raise InvalidPolicy(f"selector {text!r} must not end with '.'")
            pos += 1
            after_dot = True
        elif char == "[":
            segment, pos = _parse_bracket(text, pos)
            segments.append(segment)
            after_dot = False
        elif after_dot and (match := _IDENT.match(text, pos)):
            segments.append(FieldSegment(match.group()))
            pos = match.end()
            after_dot = False
        else:
            raise InvalidPolicy(f"selector {text!r} has an unexpected {char!r} at {pos}")
    return tuple(segments)


def _parse_bracket(text: str, pos: int) -> tuple[Segment, int]:
    """Parse ``[...]`` starting at ``text[pos] == '['``; return the segment and the next pos."""
    if text.startswith("[]", pos):
        return IterateSegment(), pos + 2
    if text.startswith('["', pos):
        close = _string_end(text, pos + 1)
        try:
            key = json.loads(text[pos + 1 : close + 1])
        except ValueError as exc:
            raise InvalidPolicy(f"selector {text!r} has a bad quoted key at {pos}") from exc
        if not text.startswith("]", close + 1):
            raise InvalidPolicy(f"selector {text!r} is missing ']' after the key at {pos}")
        return FieldSegment(key), close + 2
    close = text.find("]", pos)
    if close < 0:
        raise InvalidPolicy(f"selector {text!r} has an unclosed '[' at {pos}")
    inner = text[pos + 1 : close]
    if _INDEX.fullmatch(inner):
        return IndexSegment(int(inner)), close + 1
    if match := _SLICE.fullmatch(inner):
        start, stop = match.groups()
        return (
            SliceSegment(
                None if start is None else int(start), None if stop is None else int(stop)
            ),
            close + 1,
        )
    raise InvalidPolicy(f"selector {text!r} has {text[pos : close + 1]!r}, not an index or slice")


def _string_end(text: str, quote: int) -> int:
    """The position of the quote closing the JSON string opened at ``text[quote]``."""
    pos = quote + 1
    while pos < len(text):
        if text[pos] == "\\":
            pos += 2
        elif text[pos] == '"':
            return pos
        else:
            pos += 1
    raise InvalidPolicy(f"selector {text!r} has an unterminated string at {quote}")


def _resolve(segments: tuple[Segment, ...], start: int, value: object) -> object:
    current = value
    for pos in range(start, len(segments)):
        segment = segments[pos]
        if isinstance(segment, IterateSegment):
            children = _children(current)
            if children is None:
                return None if segment.optional else UNRESOLVED
            results: list[object] = []
            for child in children:
                result = _resolve(segments, pos + 1, child)
                if isinstance(result, Unresolved):
                    return UNRESOLVED
                results.append(result)
            return results
        step = _step(segment, current)
        if isinstance(step, Unresolved):
            return None if segment.optional else UNRESOLVED
        current = step
    return current


def _children(value: object) -> Sequence[object] | None:
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, bytes):
        return list(value)
    if isinstance(value, list | tuple):
        return value
    return None


def _step(segment: Segment, value: object) -> object:
    if isinstance(segment, FieldSegment):
        if isinstance(value, Mapping):
            return value.get(segment.name)  # a missing key is null, by the spec
        return UNRESOLVED
    if isinstance(segment, IndexSegment):
        if isinstance(value, list | tuple | bytes):
            index = segment.index
            if -len(value) <= index < len(value):
                return value[index]
        return UNRESOLVED
    if isinstance(segment, SliceSegment):
        if isinstance(value, bytes | str):
            return value[segment.start : segment.stop]
        if isinstance(value, list | tuple):
            return list(value[segment.start : segment.stop])
        return UNRESOLVED
    return UNRESOLVED  # pragma: no cover - IterateSegment is handled by _resolve
