"""Reading request bodies: a missing or mistyped field is refused by name."""

from __future__ import annotations

from typing import Any, TypeVar

from ..errors import BadRequest

T = TypeVar("T")


def field(body: Any, name: str, kind: type[T]) -> T:
    """``body[name]``, which must exist and be a ``kind``."""
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a map with '{name}'")
    value = body.get(name)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise BadRequest(f"'{name}' must be a {kind.__name__}, got {type(value).__name__}")
    return value
