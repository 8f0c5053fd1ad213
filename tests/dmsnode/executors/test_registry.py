"""Which executors a node has: the built-ins, plugins from the entry-point group
``dmsnode.executors`` (bad ones skipped, never fatal), and everyone's availability."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from dmsnode.config import Config
from dmsnode.executors import (
    EXECUTORS_GROUP,
    Availability,
    Execution,
    ExecutionSpec,
    Executor,
    NullExecutor,
    ProcessExecutor,
    availabilities,
    available_executors,
)

NODE = "did:key:z6MkTestNode"


class FakeExecutor(Executor):
    """An executor from a plugin; ``answer`` is what availability() does."""

    name = "fake"

    def __init__(self, config: Config, *, node_id: str, answer: str = "yes") -> None:
        self.config = config
        self.node_id = node_id
        self.answer = answer

    async def availability(self) -> Availability:
        if self.answer == "raise":
            raise RuntimeError("the fake broke")
        if self.answer == "hang":
            await trio.sleep_forever()
        return Availability(True, details={"fake": "yes"})

    async def start(self, spec: ExecutionSpec) -> Execution:
        raise NotImplementedError

    async def recover(self) -> list[Execution]:
        return []

    async def __aenter__(self) -> FakeExecutor:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None


@dataclass
class FakeEntryPoint:
    """What the registry uses of ``importlib.metadata.EntryPoint``."""

    name: str
    value: str
    loaded: Callable[..., Any]

    def load(self) -> Callable[..., Any]:
        return self.loaded


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return Config.loads(json.dumps({"general": {"work_dir": str(tmp_path / "work")}}))


def plugins(monkeypatch: pytest.MonkeyPatch, *entries: FakeEntryPoint) -> None:
    def entry_points(*, group: str) -> list[FakeEntryPoint]:
        assert group == EXECUTORS_GROUP
        return list(entries)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_the_built_in_executors(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    plugins(monkeypatch)
    executors = available_executors(config, node_id=NODE)
    docker_installed = all(
        importlib.util.find_spec(name) is not None for name in ("aiodocker", "trio_asyncio")
    )
    assert list(executors) == [*(["docker"] if docker_installed else []), "process", "null"]
    assert all(executor.name == name for name, executor in executors.items())
    process = executors["process"]
    assert isinstance(process, ProcessExecutor)
    assert process.root == config.work_dir / "process"
    assert process.node_id == NODE
    assert isinstance(executors["null"], NullExecutor)


def test_plugins_are_added_and_bad_ones_skipped(
    config: Config, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(config: Config, *, node_id: str) -> Executor:
        raise RuntimeError("cannot build")

    plugins(
        monkeypatch,
        FakeEntryPoint("fake", "fake_pkg:FakeExecutor", FakeExecutor),
        FakeEntryPoint("broken", "broken_pkg:make", broken),
        FakeEntryPoint("notone", "odd_pkg:make", lambda config, node_id: object()),
        FakeEntryPoint("process", "evil_pkg:make", FakeExecutor),
        FakeEntryPoint("Bad Name", "bad_pkg:make", FakeExecutor),
    )
    with caplog.at_level(logging.INFO, logger="dmsnode.executors"):
        executors = available_executors(config, node_id=NODE)
    assert isinstance(executors["fake"], FakeExecutor)
    assert executors["fake"].node_id == NODE
    assert isinstance(executors["process"], ProcessExecutor)
    assert {"broken", "notone", "Bad Name"}.isdisjoint(executors)
    messages = "\n".join(caplog.messages)
    assert "'broken' (broken_pkg:make) failed to load: RuntimeError: cannot build" in messages
    assert "'notone' (odd_pkg:make) skipped: its factory returned" in messages
    assert "'process' (evil_pkg:make) skipped: an executor is already called 'process'" in messages
    assert "'Bad Name' (bad_pkg:make) skipped: use lowercase" in messages
    assert "'fake' (fake_pkg:FakeExecutor) loaded" in messages
    assert "fake" not in available_executors(config, node_id=NODE, plugins=False)


async def test_availabilities_are_asked_at_once_and_failures_reported(
    config: Config, autojump_clock: trio.testing.MockClock
) -> None:
    executors: dict[str, Executor] = {
        "null": NullExecutor(),
        "fake": FakeExecutor(config, node_id=NODE),
        "raises": FakeExecutor(config, node_id=NODE, answer="raise"),
        "hangs": FakeExecutor(config, node_id=NODE, answer="hang"),
    }
    answers = await availabilities(executors)
    assert list(answers) == list(executors)
    assert answers["null"].available and answers["fake"].available
    assert answers["raises"] == Availability(False, "RuntimeError: the fake broke")
    assert answers["hangs"] == Availability(False, "did not answer within 15 s")
