"""Structured logs: one JSON object per line (or plain text for people), level changeable at
run time.

A JSON line holds ``ts`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``msg``, every
``extra={...}`` field of the call, and ``exc`` / ``stack`` when there is a traceback. An extra
field named like one of those is written with an ``extra_`` prefix rather than replacing it.
"""

from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import sys
from typing import Any, Final, final

from ..config import LOG_FORMATS, LOG_LEVELS
from ..errors import ConfigError

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "set_log_level"]

_LEVELS: Final[dict[str, int]] = {name: logging.getLevelName(name.upper()) for name in LOG_LEVELS}
_CORE: Final = ("ts", "level", "logger", "msg", "exc", "stack")
# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD: Final = {
    *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
    *("message", "asctime", "taskName"),
}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@final
class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (values JSON cannot hold are written as text)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                line[f"extra_{key}" if key in _CORE else key] = value
        return json.dumps(line, default=str, ensure_ascii=False)


@final
class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.000Z info dmsnode.node: message key=value``, for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{_timestamp(record)} {record.levelname.lower()} {record.name}: "
        text += record.getMessage()
        extras = [f"{k}={v!r}" for k, v in record.__dict__.items() if k not in _STANDARD]
        if extras:
            text += " " + " ".join(extras)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        return text


def _level(level: str) -> int:
    number = _LEVELS.get(str(level).strip().lower())
    if number is None:
        raise ConfigError(f"unknown log level {level!r} (known: {', '.join(LOG_LEVELS)})")
    return number


def configure_logging(
    level: str = "info",
    *,
    fmt: str = "json",
    file: str | None = None,
) -> logging.Handler:
    """Send every log record at ``level`` or above to stderr, or to ``file`` (appended; reopened
    if rotated away), formatted as ``fmt``. Calling it again replaces what it installed before.

    An unknown level or format raises :class:`ConfigError`. Returns the handler installed.
    """
    number = _level(level)
    if fmt not in LOG_FORMATS:
        raise ConfigError(f"unknown log format {fmt!r} (known: {', '.join(LOG_FORMATS)})")
    handler: logging.Handler
    if file:
        try:
            handler = logging.handlers.WatchedFileHandler(file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot open the log file {file}: {exc.strerror}") from None
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name("dmsnode")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "dmsnode"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)
    return handler


def set_log_level(level: str) -> None:
    """Change the level of every logger that inherits the root's, at run time."""
    logging.getLogger().setLevel(_level(level))
