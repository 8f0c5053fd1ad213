"""The one hierarchy of errors that dmsnode raises.

The CLI prints any :class:`DmsError` (and any :class:`nuactor.errors.NuactorError`) as one line
and exits 1; anything else is a bug.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "BadRequest",
    "ConfigError",
    "DmsError",
    "NodeUnreachable",
    "RequestRefused",
    "StoreError",
]


class DmsError(Exception):
    """Base class of every error dmsnode raises on purpose."""


class ConfigError(DmsError):
    """The configuration file or a configuration value is not acceptable; the key is named."""


class ApiError(DmsError):
    """The REST API cannot serve: its address is taken or cannot be bound (the address is
    named), or its server stopped on its own."""


class BadRequest(DmsError):
    """A request to the node is missing a field or has one of the wrong type; the field is named."""


class StoreError(DmsError):
    """The node's database cannot be opened or used (corrupt, not SQLite, a newer schema); the
    file is named."""


class NodeUnreachable(DmsError):
    """The CLI cannot reach the node's REST API (is ``dmsnode run`` running? which address?)."""


class RequestRefused(DmsError):
    """The node answered a CLI request with an error: ``error`` is its type, ``status`` the
    HTTP status, and the message its explanation."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
