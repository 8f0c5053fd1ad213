"""Validation errors: where in the file (a path such as ``allocations.web.resources.ram.size``,
and the line where known) and what is wrong.

A :class:`Problems` collects every error of one reading, so that a file is reported whole, not
one mistake at a time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, final

__all__ = ["MAX_ERRORS", "Path", "Problems", "SpecError", "format_path"]

#: A position in the document: mapping keys and list indices, from the top.
Path = tuple[str | int, ...]

#: Past this many, the rest are counted rather than listed (a garbage file can have thousands).
MAX_ERRORS: Final = 200

_PLAIN_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: Path) -> str:
    """``allocations.web.ports[0].public``; keys that are not plain names are quoted
    (``metadata["a.b"]``); the top of the document is ``(root)``."""
    text = ""
    for segment in path:
        if isinstance(segment, int):
            text += f"[{segment}]"
        elif _PLAIN_KEY.fullmatch(segment):
            text += f".{segment}" if text else segment
        else:
            text += f"[{json.dumps(segment)}]"
    return text or "(root)"


@final
@dataclass(frozen=True, slots=True)
class SpecError:
    """One problem in an ensemble file: its path, its line (1-based; ``None`` when the value
    has no line, as when it came from a template or from JSON) and the explanation."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "message": self.message}


@final
class Problems:
    """The errors found so far, with the line of each path, and which paths are broken (so
    that later checks do not pile consequences onto one mistake)."""

    def __init__(self, lines: Mapping[Path, int] | None = None) -> None:
        self._lines: Mapping[Path, int] = lines or {}
        self._errors: list[tuple[Path, SpecError]] = []
        self._dropped = 0

    def add(self, path: Path, message: str) -> None:
        """Record an error at ``path``, unless one is already recorded there (a consequence of
        the first: a refused value that is then missing, say)."""
        if self.has(path):
            return
        if len(self._errors) >= MAX_ERRORS:
            self._dropped += 1
            return
        self._errors.append((path, SpecError(format_path(path), message, self.line(path))))

    def line(self, path: Path) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def touched(self, path: Path) -> bool:
        """Whether an error was found at ``path``, inside it or above it."""
        return any(_starts_with(path, seen) or _starts_with(seen, path) for seen, _ in self._errors)

    def has(self, path: Path) -> bool:
        """Whether an error was found at exactly ``path``."""
        return any(seen == path for seen, _ in self._errors)

    def touched_any(self, paths: Iterable[Path]) -> bool:
        return any(self.touched(path) for path in paths)

    def __bool__(self) -> bool:
        return bool(self._errors)

    def errors(self) -> list[SpecError]:
        """Every error, in the order of the file (errors without a line last)."""
        ordered = sorted(
            (error for _, error in self._errors),
            key=lambda e: (e.line is None, e.line or 0),
        )
        if self._dropped:
            ordered.append(
                SpecError("(root)", f"{self._dropped} more errors not shown (fix these first)")
            )
        return ordered


def _starts_with(path: Path, prefix: Path) -> bool:
    return path[: len(prefix)] == prefix
