"""``dmsnode config get/set/unset/path/edit`` through click's runner, on real files."""

from __future__ import annotations

import json
import os
import shlex
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dmsnode.cli import cli


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config file from the machine running the tests: cwd and HOME are empty directories."""
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("DMS_CONFIG", "EDITOR", "BOOTSTRAP_PEERS"):
        monkeypatch.delenv(name, raising=False)


def run(
    *args: str,
    config: Path | None = None,
    env: dict[str, str] | None = None,
    input: str | None = None,
) -> Result:
    prefix = ["--config", str(config)] if config is not None else []
    return CliRunner().invoke(cli, [*prefix, *args], env=env, input=input)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def refused(result: Result, message: str) -> None:
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# --- get --------------------------------------------------------------------------------------


def test_get_defaults_key_section_and_everything(tmp_path: Path) -> None:
    assert ok(run("config", "get", "rest.port")) == "9999\n"
    assert ok(run("config", "get", "rest.addr")) == "127.0.0.1\n"  # strings as they are
    assert ok(run("config", "get", "p2p.listen_address")) == '["/ip4/0.0.0.0/tcp/9000"]\n'
    assert json.loads(ok(run("config", "get", "rest", "--json"))) == {
        "addr": "127.0.0.1",
        "port": 9999,
        "unsigned_writes": False,
    }
    assert json.loads(ok(run("config", "get", "rest.port", "--json"))) == 9999
    section = ok(run("config", "get", "observability")).splitlines()
    assert section[0].split() == ["KEY", "VALUE"]
    assert ["observability.log_format", "json"] in [line.split() for line in section]
    everything = json.loads(ok(run("config", "get", "--json")))
    assert everything["general"]["user_dir"] == str(tmp_path / "home" / ".nunet")
    assert everything["p2p"]["fanout"] == 6
    table = ok(run("config", "get"))
    rows = [line.split() for line in table.splitlines()]
    assert ["p2p.trust_sessions", "false"] in rows
    assert ["observability.log_file", '""'] in rows  # an empty string is visible in a table


def test_get_unknown_key() -> None:
    refused(run("config", "get", "rest.colour"), "Error: unknown config key 'rest.colour'")
    refused(run("config", "get", "nope"), "unknown config key 'nope'")


def test_get_reflects_the_environment() -> None:
    result = run("config", "get", "p2p.bootstrap_peers", "--json", env={"BOOTSTRAP_PEERS": "/a,/b"})
    assert json.loads(ok(result)) == ["/a", "/b"]


# --- set / unset ------------------------------------------------------------------------------


def test_set_writes_only_what_was_set(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    assert "rest.port = 9998" in ok(run("config", "set", "rest.port", "9998", config=path))
    ok(run("config", "set", "p2p.bootstrap_peers", '["/ip4/10.0.0.2/tcp/9000"]', config=path))
    ok(run("config", "set", "p2p.trust_sessions", "true", config=path))
    ok(run("config", "set", "rest.addr", "0.0.0.0", config=path))  # not JSON: a string
    ok(run("config", "set", "general.work_dir", "1234", config=path))  # a string key: literal
    ok(run("config", "set", "observability.log_format", '"text"', config=path))  # JSON string
    assert json.loads(path.read_text()) == {
        "general": {"work_dir": "1234"},
        "observability": {"log_format": "text"},
        "p2p": {"bootstrap_peers": ["/ip4/10.0.0.2/tcp/9000"], "trust_sessions": True},
        "rest": {"addr": "0.0.0.0", "port": 9998},
    }
    assert ok(run("config", "get", "rest.port", config=path)) == "9998\n"
    result = json.loads(ok(run("config", "set", "p2p.fanout", "8", "--json", config=path)))
    assert result == {"key": "p2p.fanout", "value": 8, "path": str(path)}


def test_set_refuses_wrong_types_and_unknown_keys_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"rest": {"port": 1}}\n')
    before = path.read_bytes()
    refused(
        run("config", "set", "rest.port", "high", config=path),
        """config key 'rest.port' must be an integer, got "high\"""",
    )
    refused(run("config", "set", "rest.port", "70000", config=path), "'rest.port' must be a port")
    refused(run("config", "set", "p2p.fanout", "0", config=path), "'p2p.fanout' must be at least 1")
    refused(
        run("config", "set", "p2p.trust_sessions", "yes", config=path),
        "'p2p.trust_sessions' must be true or false",
    )
    refused(
        run("config", "set", "observability.log_level", "loud", config=path),
        """'observability.log_level' must be one of "debug", "info\"""",
    )
    refused(
        run("config", "set", "job.port_range", "[5, 1]", config=path),
        "'job.port_range' must be two",
    )
    refused(
        run("config", "set", "rest.colour", "1", config=path), "unknown config key 'rest.colour'"
    )
    refused(run("config", "set", "rest", "{}", config=path), "'rest' is a section")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.json", "cwd"]  # no temporary file left behind


def test_set_refuses_to_touch_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"rest": {"port": 1,}}')
    refused(run("config", "set", "rest.port", "2", config=path), "not valid JSON at line 1")
    assert path.read_text() == '{"rest": {"port": 1,}}'


def test_set_finds_the_file_in_use(tmp_path: Path) -> None:
    # Nothing on the search path: ./dms_config.json is created.
    ok(run("config", "set", "rest.port", "1"))
    assert json.loads((tmp_path / "cwd" / "dms_config.json").read_text()) == {"rest": {"port": 1}}
    # DMS_CONFIG names the file when --config does not.
    other = tmp_path / "other.json"
    ok(run("config", "set", "rest.port", "2", env={"DMS_CONFIG": str(other)}))
    assert json.loads(other.read_text()) == {"rest": {"port": 2}}
    assert ok(run("config", "path", env={"DMS_CONFIG": str(other)})) == f"{other}\n"


def test_set_in_the_home_file_when_it_is_the_one_found(tmp_path: Path) -> None:
    home_file = tmp_path / "home" / ".nunet" / "dms_config.json"
    home_file.parent.mkdir(parents=True)
    home_file.write_text("{}")
    home_file.chmod(0o600)
    ok(run("config", "set", "rest.port", "3"))
    assert json.loads(home_file.read_text()) == {"rest": {"port": 3}}
    assert stat.S_IMODE(home_file.stat().st_mode) == 0o600  # permissions kept
    assert not (tmp_path / "cwd" / "dms_config.json").exists()
    assert json.loads(ok(run("config", "path", "--json"))) == {
        "path": str(home_file),
        "exists": True,
    }


def test_environment_overrides_are_not_saved(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    ok(run("config", "set", "rest.port", "5", config=path, env={"BOOTSTRAP_PEERS": "/x"}))
    assert json.loads(path.read_text()) == {"rest": {"port": 5}}


def test_unset_returns_to_the_default(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    ok(run("config", "set", "rest.port", "5", config=path))
    ok(run("config", "set", "rest.addr", "0.0.0.0", config=path))
    assert "9999" in ok(run("config", "unset", "rest.port", config=path))
    assert json.loads(path.read_text()) == {"rest": {"addr": "0.0.0.0"}}
    ok(run("config", "unset", "rest.addr", config=path))
    assert json.loads(path.read_text()) == {}
    refused(run("config", "unset", "rest.nope", config=path), "unknown config key 'rest.nope'")


def test_path_of_a_file_not_yet_created(tmp_path: Path) -> None:
    expected = tmp_path / "cwd" / "dms_config.json"
    assert ok(run("config", "path")) == f"{expected} (does not exist yet)\n"


# --- edit -------------------------------------------------------------------------------------

_EDITOR = textwrap.dedent(
    """
    import json, pathlib, sys
    plan, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    steps = json.loads(plan.read_text())
    with open(str(plan) + ".seen", "a") as seen:
        seen.write(json.dumps(target.read_text()) + "\\n")
    step = steps.pop(0)
    plan.write_text(json.dumps(steps))
    if step is None:
        sys.exit(3)
    target.write_text(step)
    """
)


def editor(tmp_path: Path, *contents: str | None) -> str:
    """An EDITOR that writes ``contents[i]`` on its i-th run (None: exit with status 3)."""
    script, plan = tmp_path / "editor.py", tmp_path / "plan.json"
    script.write_text(_EDITOR)
    plan.write_text(json.dumps(list(contents)))
    return " ".join(shlex.quote(part) for part in (sys.executable, str(script), str(plan)))


def seen(tmp_path: Path) -> list[str]:
    """What the editor found in the file on each run."""
    return [json.loads(line) for line in (tmp_path / "plan.json.seen").read_text().splitlines()]


def test_edit_saves_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"rest": {"port": 1}}\n')
    new = '{\n  "rest": {"port": 2},\n  "p2p": {"fanout": 3}\n}\n'
    output = ok(run("config", "edit", config=path, env={"EDITOR": editor(tmp_path, new)}))
    assert f"saved {path}" in output
    assert path.read_text() == new  # the user's text, formatting and all
    assert seen(tmp_path) == ['{"rest": {"port": 1}}\n']
    assert ok(run("config", "get", "p2p.fanout", config=path)) == "3\n"


def test_edit_invalid_then_edit_again(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    bad, good = '{"rest": {"port": "x"}}', '{"rest": {"port": 7}}'
    result = run(
        "config", "edit", config=path, env={"EDITOR": editor(tmp_path, bad, good)}, input="y\n"
    )
    output = ok(result)
    assert "config key 'rest.port' must be an integer" in output
    assert "Edit again?" in output
    assert seen(tmp_path) == ["{}", bad]  # the second run starts from the first edit
    assert json.loads(path.read_text()) == {"rest": {"port": 7}}


def test_edit_invalid_and_declined_keeps_the_file_and_the_edit(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"rest": {"port": 1}}')
    bad = '{"rest": {"port": 1,}}'
    result = run("config", "edit", config=path, env={"EDITOR": editor(tmp_path, bad)}, input="n\n")
    refused(result, "not valid JSON at line 1")
    assert f"{path} is unchanged; your edit is kept in " in result.output
    kept = Path(result.stderr.rstrip().rsplit(" ", 1)[-1])
    try:
        assert kept.read_text() == bad
    finally:
        kept.unlink()
    assert path.read_text() == '{"rest": {"port": 1}}'


def test_edit_without_a_terminal_to_ask_on_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    result = run("config", "edit", config=path, env={"EDITOR": editor(tmp_path, '{"x": {}}')})
    refused(result, "unknown config section 'x'")
    Path(result.stderr.rstrip().rsplit(" ", 1)[-1]).unlink()
    assert path.read_text() == "{}"


def test_edit_creates_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new" / "c.json"
    ok(
        run(
            "config", "edit", config=path, env={"EDITOR": editor(tmp_path, '{"rest": {"port": 4}}')}
        )
    )
    assert seen(tmp_path) == ["{}\n"]
    assert json.loads(path.read_text()) == {"rest": {"port": 4}}


def test_edit_without_changes_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    assert "no changes" in ok(
        run("config", "edit", config=path, env={"EDITOR": editor(tmp_path, "{}\n")})
    )
    assert not path.exists()


def test_edit_can_repair_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{broken")
    ok(run("config", "edit", config=path, env={"EDITOR": editor(tmp_path, "{}")}))
    assert path.read_text() == "{}"


def test_edit_when_the_editor_fails(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    result = run("config", "edit", config=path, env={"EDITOR": editor(tmp_path, None)})
    refused(result, f"the editor exited with status 3; {path} is unchanged")
    Path(result.stderr.rstrip().rsplit(" ", 1)[-1].rstrip(")")).unlink()
    refused(
        run("config", "edit", config=path, env={"EDITOR": str(tmp_path / "no-such-editor")}),
        "cannot run the editor",
    )
    assert path.read_text() == "{}"


def test_edit_without_editor() -> None:
    refused(run("config", "edit"), "EDITOR is not set")
