"""The IPLD data model as Python values, and the comparisons the policy language needs.

DAG-CBOR decodes to ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``, ``list``,
``dict`` (string keys) and :class:`multiformats.CID`; that is the whole of :data:`Ipld`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeAlias, TypeGuard

from multiformats import CID

__all__ = ["Ipld", "ipld_equal", "is_ipld", "is_number", "normalise"]

Ipld: TypeAlias = (
    "bool | int | float | str | bytes | CID | Sequence[Ipld] | Mapping[str, Ipld] | None"
)
"""Any value of the IPLD data model, as DAG-CBOR decodes it."""

MAX_DEPTH = 128
"""Deepest nesting accepted in arguments, policies and metadata (a guard against stack abuse)."""


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is an IPLD integer or float (``bool`` is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


_MIN_INT = -(2**64)
_MAX_INT = 2**64 - 1


def is_ipld(value: object, depth: int = 0) -> TypeGuard[Ipld]:
    """Whether ``value`` is made only of IPLD kinds, as DAG-CBOR can encode them: lists (not
    tuples), string-keyed dicts, finite floats, integers within 64 bits."""
    if depth > MAX_DEPTH:
        return False
    if value is None or isinstance(value, bool | str | bytes | CID):
        return True
    if isinstance(value, int):
        return _MIN_INT <= value <= _MAX_INT
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_ipld(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_ipld(v, depth + 1) for k, v in value.items())
    return False


def normalise(value: object, depth: int = 0) -> object:
    """``value`` with tuples made lists and other mappings made dicts, so that arguments
    written naturally in Python can be encoded (anything else is left for :func:`is_ipld`)."""
    if depth > MAX_DEPTH:
        return value
    if isinstance(value, list | tuple):
        return [normalise(item, depth + 1) for item in value]
    if isinstance(value, Mapping):
        return {key: normalise(item, depth + 1) for key, item in value.items()}
    return value


def ipld_equal(left: object, right: object) -> bool:
    """Deep IPLD equality, agnostic to the numeric kind (``1 == 1.0``) but not to bools.

    Python's ``==`` says ``True == 1`` and ``[1] == (1,)``; the policy language must not.
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if is_number(left) or is_number(right):
        return is_number(left) and is_number(right) and left == right
    if left is None or right is None:
        return left is None and right is None
    if isinstance(left, str) or isinstance(right, str):
        return isinstance(left, str) and isinstance(right, str) and left == right
    if isinstance(left, bytes) or isinstance(right, bytes):
        return isinstance(left, bytes) and isinstance(right, bytes) and left == right
    if isinstance(left, CID) or isinstance(right, CID):
        return isinstance(left, CID) and isinstance(right, CID) and bytes(left) == bytes(right)
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        return len(left) == len(right) and all(
            ipld_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(ipld_equal(left[k], right[k]) for k in left)
    return False
