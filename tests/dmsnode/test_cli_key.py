"""``dmsnode key`` through click's runner, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dmsnode.cli import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def run(
    runner: CliRunner,
    tmp_path: Path,
    *args: str,
    passphrase: str | None = "pw",
    input: str | None = None,
):  # type: ignore[no-untyped-def]
    env = {"DMS_PASSPHRASE": passphrase} if passphrase is not None else {}
    return runner.invoke(cli, ["--user-dir", str(tmp_path), *args], env=env, input=input)


def test_new_list_did(runner: CliRunner, tmp_path: Path) -> None:
    created = run(runner, tmp_path, "key", "new", "dms")
    assert created.exit_code == 0, created.output
    did = created.output.strip()
    assert did.startswith("did:key:z6Mk")
    listed = run(runner, tmp_path, "key", "list")
    assert listed.exit_code == 0
    assert "NAME" in listed.output and f"dms   {did}" in listed.output
    shown = run(runner, tmp_path, "key", "did", "dms")
    assert shown.exit_code == 0 and shown.output.strip() == did
    as_json = json.loads(run(runner, tmp_path, "key", "list", "--json").output)
    assert as_json == [{"name": "dms", "did": did, "path": str(tmp_path / "key" / "dms.json")}]
    assert stat.S_IMODE((tmp_path / "key" / "dms.json").stat().st_mode) == 0o600


def test_wrong_passphrase_is_one_line_and_exit_1(runner: CliRunner, tmp_path: Path) -> None:
    assert run(runner, tmp_path, "key", "new", "dms").exit_code == 0
    result = run(runner, tmp_path, "key", "did", "dms", passphrase="nope")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: wrong passphrase for key 'dms' ({tmp_path / 'key' / 'dms.json'})"
    ]
    assert "Traceback" not in result.output


def test_force(runner: CliRunner, tmp_path: Path) -> None:
    first = run(runner, tmp_path, "key", "new", "dms").output.strip()
    again = run(runner, tmp_path, "key", "new", "dms")
    assert again.exit_code == 1 and "--force" in again.output
    assert run(runner, tmp_path, "key", "did", "dms").output.strip() == first
    forced = run(runner, tmp_path, "key", "new", "dms", "--force")
    assert forced.exit_code == 0 and forced.output.strip() != first


def test_prompt_asks_twice_on_creation(runner: CliRunner, tmp_path: Path) -> None:
    mismatch = run(runner, tmp_path, "key", "new", "dms", passphrase=None, input="one\ntwo\n")
    assert mismatch.exit_code != 0
    assert not (tmp_path / "key" / "dms.json").exists()
    ok = run(runner, tmp_path, "key", "new", "dms", passphrase=None, input="same\nsame\n")
    assert ok.exit_code == 0, ok.output
    assert "Repeat" in ok.output
    shown = run(runner, tmp_path, "key", "did", "dms", passphrase=None, input="same\n")
    assert shown.exit_code == 0 and shown.output.strip().endswith(ok.output.strip().split()[-1])


def test_missing_key_and_bad_name(runner: CliRunner, tmp_path: Path) -> None:
    missing = run(runner, tmp_path, "key", "did", "ghost")
    assert missing.exit_code == 1 and "no key named 'ghost'" in missing.output
    bad = run(runner, tmp_path, "key", "new", "../x")
    assert bad.exit_code == 1 and "invalid key name" in bad.output


def test_empty_list(runner: CliRunner, tmp_path: Path) -> None:
    result = run(runner, tmp_path, "key", "list")
    assert result.exit_code == 0 and "no keys" in result.output
    assert json.loads(run(runner, tmp_path, "key", "list", "--json").output) == []


def test_user_dir_from_config(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "dms_config.json"
    config.write_text(json.dumps({"general": {"user_dir": str(tmp_path / "elsewhere")}}))
    result = runner.invoke(
        cli, ["--config", str(config), "key", "new", "dms"], env={"DMS_PASSPHRASE": "pw"}
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "key" / "dms.json").is_file()


def test_bad_usage_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    assert run(runner, tmp_path, "key", "new").exit_code == 2
    assert run(runner, tmp_path, "nonsense").exit_code == 2


def test_real_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "DMS_PASSPHRASE": "secret", "HOME": str(tmp_path)}
    command = [sys.executable, "-m", "dmsnode", "--user-dir", str(tmp_path / "u")]
    created = subprocess.run(
        [*command, "key", "new", "dms"], env=env, capture_output=True, text=True, timeout=60
    )
    assert created.returncode == 0, created.stderr
    did = created.stdout.strip()
    shown = subprocess.run(
        [*command, "key", "did", "dms", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(shown.stdout) == {"name": "dms", "did": did}
    wrong = subprocess.run(
        [*command, "key", "did", "dms"],
        env={**env, "DMS_PASSPHRASE": "guess"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 1
    assert (
        wrong.stderr.strip().startswith("Error: wrong passphrase")
        and len(wrong.stderr.strip().splitlines()) == 1
    )
    assert wrong.stdout == ""
