"""The node's configuration: ``dms_config.json`` merged over defaults (DESIGN §3.2).

The file is JSON without comments, and holds only the keys someone chose to set: defaults are
never written back. It is found at ``--config``/``DMS_CONFIG`` if given, else as the first
``dms_config.json`` in ``.``, ``$HOME/.nunet`` and ``/etc/nunet``. Unknown keys and values of the
wrong type are refused with the key named. docs/config.md lists every key.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, final

from .errors import ConfigError

__all__ = [
    "BID_REQUESTS",
    "CONFIG_ENV",
    "CONFIG_FILENAME",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "Config",
    "atomic_write_text",
    "config_file_in_use",
    "default_search_path",
    "find_config_file",
]

CONFIG_FILENAME: Final = "dms_config.json"
CONFIG_ENV: Final = "DMS_CONFIG"
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS: Final = ("json", "text")
BID_REQUESTS: Final = ("direct", "broadcast")


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


def _locate(path: Path | str | None, environ: Mapping[str, str]) -> Path | None:
    if path is None and environ.get(CONFIG_ENV):
        path = environ[CONFIG_ENV]
    return Path(path) if path is not None else find_config_file()


def config_file_in_use(
    path: Path | str | None = None, *, environ: Mapping[str, str] | None = None
) -> Path:
    """The file a configuration is read from and saved to: ``path``, else ``$DMS_CONFIG``, else
    the first file on the search path, else ``./dms_config.json`` (which may not exist yet)."""
    found = _locate(path, os.environ if environ is None else environ)
    return found if found is not None else Path.cwd() / CONFIG_FILENAME


# --- the schema ----------------------------------------------------------------------------------
#
# A key's kind is a type (str, int, bool), (list, element type), or a tuple of allowed strings
# (("json", "text")). ``check`` adds a constraint beyond the type and returns what is wrong.


@dataclass(frozen=True)
class _Key:
    kind: Any
    default: Callable[[], Any]
    check: Callable[[Any], str | None] | None = None


def _const(value: Any) -> Callable[[], Any]:
    return lambda: copy.deepcopy(value)


def _in_nunet(*parts: str) -> Callable[[], Any]:
    return lambda: str(_home().joinpath(".nunet", *parts))


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "a port number in 0..65535"


def _at_least(low: int) -> Callable[[int], str | None]:
    return lambda value: None if value >= low else f"at least {low}"


def _port_range(value: list[int]) -> str | None:
    ok = len(value) == 2 and all(_port(p) is None for p in value) and value[0] <= value[1]
    return None if ok else "two port numbers [first, last] with first <= last"


_SCHEMA: Final[Mapping[str, Mapping[str, _Key]]] = {
    "general": {
        "user_dir": _Key(str, _in_nunet()),
        "work_dir": _Key(str, _in_nunet("work")),
        "data_dir": _Key(str, _in_nunet("data")),
    },
    "rest": {
        "addr": _Key(str, _const("127.0.0.1")),
        "port": _Key(int, _const(9999), _port),
        "unsigned_writes": _Key(bool, _const(False)),
    },
    "p2p": {
        "listen_address": _Key((list, str), _const(["/ip4/0.0.0.0/tcp/9000"])),
        "bootstrap_peers": _Key((list, str), _const([])),
        "trust_sessions": _Key(bool, _const(False)),
        "fanout": _Key(int, _const(6), _at_least(1)),
    },
    "job": {
        "allow_privileged_docker": _Key(bool, _const(False)),
        "port_range": _Key((list, int), _const([16384, 32768]), _port_range),
    },
    "provider": {
        "continent": _Key(str, _const("")),
        "country": _Key(str, _const("")),
        "city": _Key(str, _const("")),
        "commit_ttl_s": _Key(int, _const(30), _at_least(1)),
        "orphan_timeout_s": _Key(int, _const(300), _at_least(10)),
    },
    "orchestrator": {
        "bid_requests": _Key(BID_REQUESTS, _const("direct")),
        "bid_fanout": _Key(int, _const(4), _at_least(1)),
        "bid_timeout_ms": _Key(int, _const(3000), _at_least(10)),
        "bid_quorum": _Key(int, _const(3), _at_least(1)),
        "step_timeout_ms": _Key(int, _const(15000), _at_least(100)),
        "deployment_timeout_s": _Key(int, _const(300), _at_least(1)),
        "liveness_interval_ms": _Key(int, _const(5000), _at_least(100)),
        "liveness_misses": _Key(int, _const(3), _at_least(1)),
        "recovery_limit": _Key(int, _const(3), _at_least(0)),
    },
    "observability": {
        "log_level": _Key(LOG_LEVELS, _const("info")),
        "log_format": _Key(LOG_FORMATS, _const("json")),
        "log_file": _Key(str, _const("")),
        "metrics": _Key(bool, _const(True)),
        "events_keep": _Key(int, _const(100_000), _at_least(1)),
    },
}


def _defaults() -> dict[str, dict[str, Any]]:
    return {s: {k: spec.default() for k, spec in keys.items()} for s, keys in _SCHEMA.items()}


def _type_name(kind: Any) -> str:
    if isinstance(kind, tuple) and kind and kind[0] is list:
        return f"a list of {_type_name(kind[1])}"
    if isinstance(kind, tuple):
        return "one of " + ", ".join(json.dumps(choice) for choice in kind)
    return {str: "a string", int: "an integer", bool: "true or false"}[kind]


def _check_value(key: str, spec: _Key, value: Any) -> None:
    kind = spec.kind
    if isinstance(kind, tuple) and kind and kind[0] is list:
        ok = isinstance(value, list) and all(_is(kind[1], item) for item in value)
    elif isinstance(kind, tuple):
        ok = value in kind and isinstance(value, str)
    else:
        ok = _is(kind, value)
    if not ok:
        raise ConfigError(f"config key '{key}' must be {_type_name(kind)}, got {json.dumps(value)}")
    problem = spec.check(value) if spec.check is not None else None
    if problem is not None:
        raise ConfigError(f"config key '{key}' must be {problem}, got {json.dumps(value)}")


def _is(kind: type, value: Any) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _spec(key: str, source: str | None = None) -> tuple[str, str, _Key]:
    section, _, name = key.partition(".")
    keys = _SCHEMA.get(section)
    if keys is None or name not in keys:
        where = f"{source}: " if source else ""
        if keys is not None and not name:
            raise ConfigError(
                f"{where}'{section}' is a section; name one of its keys"
                f" ({', '.join(f'{section}.{k}' for k in keys)})"
            )
        raise ConfigError(f"{where}unknown config key '{key}'")
    return section, name, keys[name]


# --- the configuration ---------------------------------------------------------------------------


@final
@dataclass
class Config:
    """A loaded configuration: defaults, then the file (or :meth:`set`), then the environment.

    ``values`` is what the node uses; what :meth:`save` writes is only the keys read from the file
    or set since, so defaults and environment overrides never end up in the file.
    """

    values: dict[str, dict[str, Any]] = field(default_factory=_defaults)
    path: Path | None = None
    _explicit: dict[str, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def load(
        cls,
        path: Path | str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> Config:
        """Load ``path`` (else ``$DMS_CONFIG``, else the first file on the search path) over the
        defaults.

        With ``missing_ok`` a ``path`` that does not exist yet gives the defaults and becomes
        :attr:`path` (where :meth:`save` will create it). ``BOOTSTRAP_PEERS`` (comma- or
        space-separated multiaddrs) in the environment replaces ``p2p.bootstrap_peers``.
        """
        environ = os.environ if environ is None else environ
        config = cls()
        file = _locate(path, environ)
        if file is not None:
            config.path = file
            if not (missing_ok and not file.exists()):
                config.merge(_parse(_read(file), source=str(file)), source=str(file))
        peers = environ.get("BOOTSTRAP_PEERS", "").replace(",", " ").split()
        if peers:
            config.values["p2p"]["bootstrap_peers"] = peers
        return config

    @classmethod
    def loads(cls, text: str, *, source: str = "config") -> Config:
        """Parse and check a configuration document (no file, no environment); errors name
        ``source``."""
        config = cls()
        config.merge(_parse(text, source=source), source=source)
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

    def set(self, key: str, value: Any, *, source: str | None = None) -> None:
        """Set a dotted key, checking that it exists and that the value has its type; errors
        name the key (and ``source``, if given)."""
        section, name, spec = _spec(key, source)
        try:
            _check_value(key, spec, value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None
        self.values[section][name] = copy.deepcopy(value)
        self._explicit.setdefault(section, {})[name] = copy.deepcopy(value)

    def unset(self, key: str) -> None:
        """Return a dotted key to its default (and drop it from what :meth:`save` writes)."""
        section, name, spec = _spec(key)
        self.values[section][name] = spec.default()
        entries = self._explicit.get(section, {})
        entries.pop(name, None)
        if not entries:
            self._explicit.pop(section, None)

    @staticmethod
    def is_string_key(key: str) -> bool:
        """Whether a dotted key holds a string (so any text is a valid value's type)."""
        kind = _spec(key)[2].kind
        return kind is str or (isinstance(kind, tuple) and bool(kind) and kind[0] is not list)

    @staticmethod
    def all_keys() -> list[str]:
        """Every dotted key, in the order of docs/config.md."""
        return [f"{section}.{name}" for section, keys in _SCHEMA.items() for name in keys]

    def document(self) -> dict[str, dict[str, Any]]:
        """What :meth:`save` writes: the keys read from the file or set since, by section."""
        return copy.deepcopy({s: dict(sorted(e.items())) for s, e in self._explicit.items() if e})

    @property
    def save_path(self) -> Path:
        """The file in use: where the configuration was loaded from, else
        ``./dms_config.json``."""
        return self.path if self.path is not None else Path.cwd() / CONFIG_FILENAME

    def save(self, path: Path | str | None = None) -> Path:
        """Write :meth:`document` to ``path`` (default :attr:`save_path`) atomically; return the
        path written."""
        target = Path(path) if path is not None else self.save_path
        atomic_write_text(target, json.dumps(self.document(), indent=2) + "\n")
        return target

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


def atomic_write_text(target: Path, text: str) -> None:
    """Replace ``target`` with ``text`` so that a crash leaves either the old or the new file.

    The text goes to a temporary file in the same directory, is flushed to disk, renamed over the
    target, and the directory is synced. The target's permissions are kept.
    """
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write config file {target}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644  # what a new file would get from a usual umask; mkstemp's is 0o600
        os.chmod(temp, mode)
        os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise ConfigError(f"cannot write config file {target}: {exc.strerror}") from None
    with contextlib.suppress(OSError):
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read config file {file}: {reason}") from None


def _parse(text: str, *, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
