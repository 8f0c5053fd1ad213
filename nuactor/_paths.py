"""Behaviour paths: ``/``-delimited, lowercase (``/dms/node/peers/list``)."""

from __future__ import annotations

import re
from typing import Final

_SEGMENT: Final = r"[a-z0-9][a-z0-9_.-]*"
_PATH: Final = re.compile(rf"^(/{_SEGMENT})+$")


def check_path(path: str, *, what: str = "behaviour") -> str:
    """Return ``path`` if it is a valid behaviour path, else raise ``ValueError`` saying why."""
    if not isinstance(path, str) or not _PATH.match(path):
        raise ValueError(
            f"invalid {what} path {path!r}: use lowercase segments of letters, digits, '_', '.'"
            " or '-', each after a '/', such as '/dms/node/peers/list'"
        )
    return path


def is_under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it, segment-wise (``/public`` covers ``/public/x``)."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")
