"""Command strings: syntax and attenuation.

A command is a ``/``-separated path such as ``/msg/send``; ``/`` is the top command and proves
every other. A delegation of ``/dms`` covers ``/dms`` itself and everything under ``/dms/``, but
not ``/dmsx``: attenuation is by whole segments, never by string prefix.
"""

from __future__ import annotations

from ._errors import InvalidCommand

__all__ = ["check_command", "command_covers"]

TOP = "/"


def check_command(command: object) -> str:
    """Return ``command`` if it is a well-formed command, else raise :class:`InvalidCommand`.

    The spec's rules: it is a string, it starts with ``/``, it is lowercase, it has no trailing
    ``/`` (unless it is ``/`` itself), and no segment is empty.
    """
    if not isinstance(command, str):
        raise InvalidCommand(f"a command is a string, got {type(command).__name__}")
    if command == TOP:
        return command
    if not command.startswith("/"):
        raise InvalidCommand(f"command {command!r} must start with '/'")
    if command.endswith("/"):
        raise InvalidCommand(f"command {command!r} must not end with '/' (only '/' itself may)")
    if "//" in command:
        raise InvalidCommand(f"command {command!r} has an empty segment ('//')")
    if command != command.lower():
        raise InvalidCommand(f"command {command!r} must be lowercase")
    return command


def command_covers(granted: str, requested: str) -> bool:
    """Whether a delegation of ``granted`` proves ``requested`` (equal, or a parent path)."""
    return granted == TOP or requested == granted or requested.startswith(granted + "/")
