"""The one hierarchy of errors that dmsnode raises.

The CLI prints any :class:`DmsError` (and any :class:`nuactor.errors.NuactorError`) as one line
and exits 1; anything else is a bug.
"""

from __future__ import annotations

__all__ = ["BadRequest", "ConfigError", "DmsError", "StoreError"]


class DmsError(Exception):
    """Base class of every error dmsnode raises on purpose."""


class ConfigError(DmsError):
    """The configuration file or a configuration value is not acceptable; the key is named."""


class BadRequest(DmsError):
    """A request to the node is missing a field or has one of the wrong type; the field is named."""


class StoreError(DmsError):
    """The node's database cannot be opened or used (corrupt, not SQLite, a newer schema); the
    file is named."""
