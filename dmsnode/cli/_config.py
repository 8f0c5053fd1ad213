"""``dmsnode config``: read and change ``dms_config.json`` (docs/config.md lists every key).

The file in use is ``--config``/``DMS_CONFIG``, else the first ``dms_config.json`` on the search
path, else ``./dms_config.json``. Changes are written atomically and hold only the keys that were
set, never the defaults, so a later release's new defaults still apply.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import click

from ..config import Config, atomic_write_text, config_file_in_use
from ..errors import ConfigError, DmsError
from ._app import App, pass_app
from ._output import json_option, print_json, print_table


@click.group()
def config() -> None:
    """Read and change the configuration file.

    \b
    Examples:
      dmsnode config get rest.port
      dmsnode config get p2p --json
      dmsnode config set rest.port 9998
      dmsnode config set p2p.bootstrap_peers '["/ip4/10.0.0.2/tcp/9000"]'
      dmsnode config unset rest.port
      EDITOR=nano dmsnode config edit
    """


def _show(value: Any) -> str:
    """A value for people: strings as they are (an empty one as ""), everything else as JSON."""
    return value if isinstance(value, str) and value else json.dumps(value)


@config.command("get")
@click.argument("key", required=False)
@json_option
@pass_app
def config_get(app: App, key: str | None, as_json: bool) -> None:
    """Print the value of KEY (``rest.port``), a section (``rest``), or with no KEY everything.

    Values are the ones in effect: defaults, then the file, then the environment. With --json
    the value itself is printed as JSON.

    \b
    Examples:
      dmsnode config get rest.port
      dmsnode config get p2p --json
      dmsnode config get
    """
    cfg = app.config
    if key is None:
        value: Any = {section: cfg.get(section) for section in cfg.values}
    else:
        value = cfg.get(key)
    if as_json:
        print_json(value)
    elif isinstance(value, dict):
        rows: list[list[str]] = []
        for name, item in value.items():
            prefix = f"{key}.{name}" if key else name
            if isinstance(item, dict):
                rows += [[f"{prefix}.{k}", _show(v)] for k, v in item.items()]
            else:
                rows.append([prefix, _show(item)])
        print_table(["KEY", "VALUE"], rows)
    else:
        click.echo(value if isinstance(value, str) else _show(value))


def parse_value(key: str, text: str) -> Any:
    """VALUE on the command line: JSON if it parses, else the text itself. A string key takes
    any text literally (``config set rest.addr 10`` means the string "10")."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    if Config.is_string_key(key) and not isinstance(value, str):
        return text
    return value


@config.command("set")
@click.argument("key")
@click.argument("value")
@json_option
@pass_app
def config_set(app: App, key: str, value: str, as_json: bool) -> None:
    """Set KEY to VALUE in the configuration file (creating it if needed).

    VALUE is read as JSON when it parses (9998, true, ["a", "b"]) and as a string otherwise.
    An unknown key or a value of the wrong type is refused and the file left as it was.

    \b
    Examples:
      dmsnode config set rest.port 9998
      dmsnode config set p2p.bootstrap_peers '["/ip4/10.0.0.2/tcp/9000"]'
      dmsnode config set observability.log_level debug
    """
    cfg = Config.load(app.config_path, missing_ok=True)
    parsed = parse_value(key, value)
    cfg.set(key, parsed)
    path = cfg.save()
    if as_json:
        print_json({"key": key, "value": parsed, "path": str(path)})
    else:
        click.echo(f"{key} = {json.dumps(parsed)}  (saved to {path})")


@config.command("unset")
@click.argument("key")
@json_option
@pass_app
def config_unset(app: App, key: str, as_json: bool) -> None:
    """Remove KEY from the configuration file, so that its default applies again.

    \b
    Examples:
      dmsnode config unset rest.port
    """
    cfg = Config.load(app.config_path, missing_ok=True)
    cfg.unset(key)
    path = cfg.save_path
    if path.exists():
        cfg.save()
    if as_json:
        print_json({"key": key, "value": cfg.get(key), "path": str(path)})
    else:
        click.echo(f"{key} = {json.dumps(cfg.get(key))}  (the default; {path})")


@config.command("path")
@json_option
@pass_app
def config_path(app: App, as_json: bool) -> None:
    """Print the configuration file in use (which 'set' and 'edit' change).

    \b
    Examples:
      dmsnode config path
    """
    path = config_file_in_use(app.config_path)
    if as_json:
        print_json({"path": str(path), "exists": path.is_file()})
    else:
        click.echo(str(path) if path.is_file() else f"{path} (does not exist yet)")


@config.command("edit")
@pass_app
def config_edit(app: App) -> None:
    """Open the configuration file in $EDITOR, and save it only if it is valid.

    The editor works on a copy. If the result is not a valid configuration, what is wrong is
    shown and you may edit again; if you decline, the file is left as it was and your edit is
    kept in the copy, whose name is printed.

    \b
    Examples:
      EDITOR=nano dmsnode config edit
      dmsnode --config ./node1.json config edit
    """
    editor = os.environ.get("EDITOR", "").strip()
    if not editor:
        raise DmsError(
            "EDITOR is not set; run e.g. 'EDITOR=nano dmsnode config edit',"
            " or use 'dmsnode config set KEY VALUE'"
        )
    target = config_file_in_use(app.config_path)
    try:
        original = target.read_text(encoding="utf-8") if target.exists() else "{}\n"
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {target}: {exc}") from None
    copy = _working_copy(original)
    while True:
        _run_editor(editor, copy, target)
        text = copy.read_text(encoding="utf-8", errors="replace")
        if text == original:
            copy.unlink()
            click.echo(f"no changes to {target}")
            return
        try:
            Config.loads(text, source=str(target))
        except ConfigError as exc:
            click.echo(f"Error: {exc}", err=True)
            if _confirm("Edit again?"):
                continue
            raise DmsError(f"{target} is unchanged; your edit is kept in {copy}") from None
        break
    atomic_write_text(target, text)
    copy.unlink()
    click.echo(f"saved {target}")


def _working_copy(text: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="dms_config.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(name)


def _run_editor(editor: str, copy: Path, target: Path) -> None:
    """Run the editor on ``copy``; a failed or missing editor leaves ``target`` untouched."""
    try:
        status = subprocess.run([*shlex.split(editor), str(copy)], check=False).returncode
    except OSError as exc:
        with contextlib.suppress(OSError):
            copy.unlink()
        raise DmsError(f"cannot run the editor {editor!r} (from EDITOR): {exc.strerror}") from None
    if status != 0:
        raise DmsError(
            f"the editor exited with status {status}; {target} is unchanged"
            f" (the edited copy is {copy})"
        )


def _confirm(question: str) -> bool:
    try:
        return click.confirm(question, default=True)
    except click.Abort:  # end of input: no one to ask
        click.echo()  # end the prompt's line
        return False
