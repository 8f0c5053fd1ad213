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


def test_new_keys_have_their_defaults(tmp_path: Path) -> None:
    config = Config.load(tmp_path / "absent.json", environ={}, missing_ok=True)
    assert config.get("p2p.trust_sessions") is False
    assert config.get("p2p.fanout") == 6
    assert config.get("observability") == {
        "log_level": "info",
        "log_format": "json",
        "log_file": "",
        "metrics": True,
        "events_keep": 100_000,
    }


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("observability.log_format", "xml", 'must be one of "json", "text", got "xml"'),
        ("observability.log_level", "INFO", 'must be one of "debug"'),
        ("rest.port", 65536, "must be a port number in 0..65535, got 65536"),
        ("p2p.fanout", 0, "'p2p.fanout' must be at least 1"),
        ("job.port_range", [1], "'job.port_range' must be two port numbers"),
        ("observability.metrics", "yes", "'observability.metrics' must be true or false"),
        (
            "rest",
            {},
            "'rest' is a section; name one of its keys (rest.addr, rest.port, rest.unsigned_writes)",
        ),
    ],
)
def test_set_refusals_name_the_key(key: str, value: object, message: str) -> None:
    config = Config()
    with pytest.raises(ConfigError) as info:
        config.set(key, value)
    assert message in str(info.value)
    assert not str(info.value).startswith("config:")  # no source given, none named


def test_save_writes_only_what_was_read_or_set(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"rest": {"port": 9999}, "p2p": {"fanout": 3}}')
    config = Config.load(path, environ={"BOOTSTRAP_PEERS": "/ip4/1.2.3.4/tcp/1"})
    config.set("observability.log_format", "text")
    config.unset("p2p.fanout")
    assert config.get("p2p.fanout") == 6
    assert config.save() == path
    # A value equal to its default stays (someone wrote it), the environment's does not.
    assert json.loads(path.read_text()) == {
        "observability": {"log_format": "text"},
        "rest": {"port": 9999},
    }
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no temporary file left


def test_missing_ok_and_save_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        Config.load(tmp_path / "absent.json", environ={})
    config = Config.load(tmp_path / "sub" / "absent.json", environ={}, missing_ok=True)
    assert config.save_path == tmp_path / "sub" / "absent.json"
    config.set("rest.port", 1)
    config.save()
    assert json.loads((tmp_path / "sub" / "absent.json").read_text()) == {"rest": {"port": 1}}
    assert Config.load(environ={}).save_path == tmp_path / "dms_config.json"


def test_dms_config_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.json"
    path.write_text('{"rest": {"port": 5}}')
    config = Config.load(environ={"DMS_CONFIG": str(path)})
    assert (config.path, config.get("rest.port")) == (path, 5)


def test_loads_names_the_source() -> None:
    assert Config.loads('{"rest": {"port": 1}}').get("rest.port") == 1
    with pytest.raises(ConfigError, match=r"^my.json: config key 'rest.port' must be"):
        Config.loads('{"rest": {"port": true}}', source="my.json")
    with pytest.raises(ConfigError, match=r"^my.json: not valid JSON at line 2"):
        Config.loads('{\n"rest"}', source="my.json")


def test_values_are_copies() -> None:
    config = Config()
    peers = ["/ip4/1.1.1.1/tcp/1"]
    config.set("p2p.bootstrap_peers", peers)
    peers.append("/x")
    config.get("p2p.bootstrap_peers").append("/y")
    assert config.get("p2p.bootstrap_peers") == ["/ip4/1.1.1.1/tcp/1"]


def test_docs_describe_every_key() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "config.md").read_text()
    missing = [key for key in Config.all_keys() if f"`{key}`" not in docs]
    assert missing == []
