"""Structured logs: JSON lines with the expected fields, text for people, run-time levels."""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from dmsnode.errors import ConfigError
from dmsnode.observability import configure_logging, set_log_level


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_json_lines(tmp_path: Path) -> None:
    log_file = tmp_path / "dms.log"
    configure_logging("info", file=str(log_file))
    log = logging.getLogger("dmsnode.test")
    log.debug("not shown")
    log.info("hello %s", "world", extra={"peer": "did:key:z6Mk", "n": 3, "level": "clash"})
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("it failed", extra={"obj": object()})
    first, second = lines(log_file)
    assert first["msg"] == "hello world"
    assert first["level"] == "info"
    assert first["logger"] == "dmsnode.test"
    assert first["peer"] == "did:key:z6Mk" and first["n"] == 3
    assert first["extra_level"] == "clash"  # an extra never replaces a core field
    ts = datetime.datetime.fromisoformat(str(first["ts"]).replace("Z", "+00:00"))
    assert ts.utcoffset() == datetime.timedelta(0)
    assert str(first["ts"]).endswith("Z")
    now = datetime.datetime.now(tz=datetime.UTC)
    assert abs((now - ts).total_seconds()) < 60
    assert second["level"] == "error"
    assert "ValueError: bad\nthing" in str(second["exc"])
    assert str(second["obj"]).startswith("<object object")  # not JSON: written as text


def test_level_changes_at_run_time(tmp_path: Path) -> None:
    log_file = tmp_path / "dms.log"
    configure_logging("warning", fmt="json", file=str(log_file))
    log = logging.getLogger("dmsnode.test")
    log.info("hidden")
    set_log_level("DEBUG")
    log.debug("shown")
    set_log_level("error")
    log.warning("hidden too")
    assert [line["msg"] for line in lines(log_file)] == ["shown"]


def test_text_format_and_reconfiguring_replaces_the_handler(tmp_path: Path) -> None:
    first, second = tmp_path / "1.log", tmp_path / "2.log"
    configure_logging("info", fmt="text", file=str(first))
    configure_logging("info", fmt="text", file=str(second))
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "dmsnode"]
    assert len(ours) == 1
    logging.getLogger("dmsnode.x").info("hi", extra={"k": 1})
    assert first.read_text() == ""
    text = second.read_text()
    assert text.endswith(" info dmsnode.x: hi k=1\n")
    assert text[:4].isdigit() and "T" in text.split()[0]


def test_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info")
    logging.getLogger("dmsnode.x").info("to stderr")
    assert json.loads(capsys.readouterr().err.strip().splitlines()[-1])["msg"] == "to stderr"


@pytest.mark.parametrize("level", ["verbose", "", "10", "warn"])
def test_bad_levels_are_refused(level: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown log level .* \(known: debug, info"):
        configure_logging(level)
    with pytest.raises(ConfigError, match="unknown log level"):
        set_log_level(level)


def test_bad_format_and_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown log format 'xml'"):
        configure_logging("info", fmt="xml")
    with pytest.raises(ConfigError, match="cannot open the log file"):
        configure_logging("info", file=str(tmp_path / "missing" / "dir" / "x.log"))
