"""The node's configuration: ``dms_config.json`` merged over defaults (DESIGN §3.2).

The file is JSON without comments, and holds only the keys that differ from the defaults. It is
searched in ``.``, ``$HOME/.nunet`` and ``/etc/nunet`` (the first found wins) unless a path is
given. Unknown keys and values of the wrong type are refused with the key named.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, final

from .errors import ConfigError

__all__ = ["CONFIG_FILENAME", "Config", "default_search_path", "find_config_file"]

CONFIG_FILENAME: Final = "dms_config.json"


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def default_search_path() -> list[Path]:
    """Where ``dms_config.json`` is looked for, in order."""
    return [Path.cwd(), _home() / ".nunet", Path("/etc/nunet")]


def find_config_file() -> Path | None:
    """The first ``dms_config.json`` on the search path, if any."""
    for directory in default_search_path():
        candidate = directory / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def _defaults() -> dict[str, dict[str, Any]]:
    nunet = _home() / ".nunet"
    return {
        "general": {
            "user_dir": str(nunet),
            "work_dir": str(nunet / "work"),
            "data_dir": str(nunet / "data"),
        },
        "rest": {"addr": "127.0.0.1", "port": 9999},
        "p2p": {"listen_address": ["/ip4/0.0.0.0/tcp/9000"], "bootstrap_peers": []},
        "job": {"allow_privileged_docker": False, "port_range": [16384, 32768]},
        "observability": {"log_level": "info", "log_file": ""},
    }


# The type every key must have. A list type is (list, element type).
_SCHEMA: Final[Mapping[str, Mapping[str, Any]]] = {
    "general": {"user_dir": str, "work_dir": str, "data_dir": str},
    "rest": {"addr": str, "port": int},
    "p2p": {"listen_address": (list, str), "bootstrap_peers": (list, str)},
    "job": {"allow_privileged_docker": bool, "port_range": (list, int)},
    "observability": {"log_level": str, "log_file": str},
}


def _type_name(kind: Any) -> str:
    if isinstance(kind, tuple):
        return f"a list of {_type_name(kind[1])}"
    return {str: "a string", int: "an integer", bool: "true or false"}[kind]


def _check_value(key: str, kind: Any, value: Any) -> None:
    if isinstance(kind, tuple):
        ok = isinstance(value, list) and all(_is(kind[1], item) for item in value)
    else:
        ok = _is(kind, value)
    if not ok:
        raise ConfigError(f"config key '{key}' must be {_type_name(kind)}, got {json.dumps(value)}")


def _is(kind: type, value: Any) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


@final
@dataclass
class Config:
    """A loaded configuration: defaults, then the file, then the environment."""

    values: dict[str, dict[str, Any]] = field(default_factory=_defaults)
    path: Path | None = None

    @classmethod
    def load(
        cls, path: Path | str | None = None, *, environ: Mapping[str, str] | None = None
    ) -> Config:
        """Load ``path`` (or the first file on the search path) over the defaults.

        ``BOOTSTRAP_PEERS`` (comma- or space-separated multiaddrs) in the environment replaces
        ``p2p.bootstrap_peers``.
        """
        environ = os.environ if environ is None else environ
        config = cls()
        file = Path(path) if path is not None else find_config_file()
        if file is not None:
            config.path = file
            config.merge(_read(file), source=str(file))
        peers = environ.get("BOOTSTRAP_PEERS", "").replace(",", " ").split()
        if peers:
            config.values["p2p"]["bootstrap_peers"] = peers
        return config

    def merge(self, document: Any, *, source: str = "config") -> None:
        """Apply a partial configuration document, refusing unknown keys and wrong types."""
        if not isinstance(document, dict):
            raise ConfigError(f"{source}: the configuration must be a JSON object")
        for section, entries in document.items():
            if section not in _SCHEMA:
                raise ConfigError(
                    f"{source}: unknown config section '{section}' (known: {', '.join(_SCHEMA)})"
                )
            if not isinstance(entries, dict):
                raise ConfigError(f"{source}: config section '{section}' must be an object")
            for key, value in entries.items():
                self.set(f"{section}.{key}", value, source=source)

    def get(self, key: str) -> Any:
        """The value of a dotted key (``rest.port``), or a whole section (``rest``)."""
        section, _, name = key.partition(".")
        if section not in _SCHEMA or (name and name not in _SCHEMA[section]):
            raise ConfigError(f"unknown config key '{key}'")
        value = self.values[section] if not name else self.values[section][name]
        return copy.deepcopy(value)

    def set(self, key: str, value: Any, *, source: str = "config") -> None:
        """Set a dotted key, checking that it exists and that the value has its type."""
        section, _, name = key.partition(".")
        kinds = _SCHEMA.get(section)
        if kinds is None or name not in kinds:
            raise ConfigError(f"{source}: unknown config key '{key}'")
        _check_value(key, kinds[name], value)
        self.values[section][name] = value

    # Typed accessors for what the code uses most.
    @property
    def user_dir(self) -> Path:
        return Path(os.path.expanduser(self.values["general"]["user_dir"]))

    @property
    def work_dir(self) -> Path:
        return Path(os.path.expanduser(self.values["general"]["work_dir"]))

    @property
    def data_dir(self) -> Path:
        return Path(os.path.expanduser(self.values["general"]["data_dir"]))


def _read(file: Path) -> Any:
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{file}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
