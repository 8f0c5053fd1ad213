"""Configuration: defaults, the search path, refusals that name the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmsnode.config import Config
from dmsnode.errors import ConfigError


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = Config.load(environ={})
    assert config.path is None
    assert config.get("rest.addr") == "127.0.0.1"  # the API is local unless asked otherwise
    assert config.get("rest.port") == 9999
    assert config.user_dir == tmp_path / ".nunet"


def test_search_path_first_found_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".nunet").mkdir(parents=True)
    (tmp_path / "home" / ".nunet" / "dms_config.json").write_text('{"rest": {"port": 1}}')
    assert Config.load(environ={}).get("rest.port") == 1
    (tmp_path / "dms_config.json").write_text('{"rest": {"port": 2}}')
    assert Config.load(environ={}).get("rest.port") == 2


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"rest": {"port": "9999"}}, "'rest.port' must be an integer"),
        ({"rest": {"colour": 1}}, "unknown config key 'rest.colour'"),
        ({"resst": {}}, "unknown config section 'resst'"),
        ({"p2p": {"bootstrap_peers": "x"}}, "'p2p.bootstrap_peers' must be a list of a string"),
        ({"job": {"allow_privileged_docker": 1}}, "true or false"),
        ([], "must be a JSON object"),
    ],
)
def test_refusals_name_the_key(tmp_path: Path, document: object, message: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(document))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Config.load(path, environ={})


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"rest": {"port": 1,}}')
    with pytest.raises(ConfigError, match="line 1"):
        Config.load(path, environ={})


def test_bootstrap_peers_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{}")
    config = Config.load(
        path, environ={"BOOTSTRAP_PEERS": "/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/tcp/2"}
    )
    assert config.get("p2p.bootstrap_peers") == ["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"]
