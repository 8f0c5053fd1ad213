"""Which executors a node has: the built-in ones and those of installed packages.

A package adds an executor with an entry point in the group ``dmsnode.executors``; the entry
point names a factory called as ``factory(config, node_id=...)`` that returns an
:class:`~dmsnode.executors.Executor` (a class with that constructor will do). A factory that
fails, returns something else or takes a built-in name is logged and skipped: it never stops
the node. Whether each executor can run anything here is :func:`availabilities`' answer.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Mapping
from typing import Final

import trio

from ..config import Config
from ._interface import Availability, Executor
from ._null import NullExecutor
from ._process import ProcessExecutor

__all__ = ["AVAILABILITY_TIMEOUT", "EXECUTORS_GROUP", "availabilities", "available_executors"]

log = logging.getLogger("dmsnode.executors")

EXECUTORS_GROUP: Final = "dmsnode.executors"
#: How long :func:`availabilities` waits for one executor's answer.
AVAILABILITY_TIMEOUT: Final = 15.0
BUILT_IN: Final = ("docker", "process", "null")
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def available_executors(
    config: Config, *, node_id: str, plugins: bool = True
) -> dict[str, Executor]:
    """The executors of this node by name, not entered yet: ``docker`` (if its libraries are
    installed), ``process`` (in ``general.work_dir``/process), ``null``, then those of
    installed packages (``plugins``)."""
    executors: dict[str, Executor] = {}
    docker = _docker(config, node_id)
    if docker is not None:
        executors["docker"] = docker
    executors["process"] = ProcessExecutor(config.work_dir / "process", node_id=node_id)
    executors["null"] = NullExecutor()
    if plugins:
        executors.update(_plugins(config, node_id, taken=set(executors) | set(BUILT_IN)))
    return executors


def _docker(config: Config, node_id: str) -> Executor | None:
    try:
        from ._docker import DockerExecutor
    except ImportError as exc:  # its libraries are optional for a node without Docker
        log.info("docker executor not installed: %s", exc)
        return None
    return DockerExecutor(
        node_id=node_id, allow_privileged=bool(config.get("job.allow_privileged_docker"))
    )


def _plugins(config: Config, node_id: str, *, taken: set[str]) -> dict[str, Executor]:
    found: dict[str, Executor] = {}
    entries = importlib.metadata.entry_points(group=EXECUTORS_GROUP)
    for entry in sorted(entries, key=lambda e: e.name):
        where = f"executor plugin {entry.name!r} ({entry.value})"
        if not _NAME.fullmatch(entry.name):
            log.error("%s skipped: use lowercase letters, digits, '_' or '-'", where)
            continue
        if entry.name in taken or entry.name in found:
            log.error("%s skipped: an executor is already called %r", where, entry.name)
            continue
        try:
            executor = entry.load()(config, node_id=node_id)
        except Exception as exc:
            log.error("%s failed to load: %s: %s", where, type(exc).__name__, exc)
            continue
        if not isinstance(executor, Executor):
            log.error("%s skipped: its factory returned %r, not an Executor", where, executor)
            continue
        found[entry.name] = executor
        log.info("%s loaded", where)
    return found


async def availabilities(executors: Mapping[str, Executor]) -> dict[str, Availability]:
    """Each executor's :meth:`~Executor.availability`, asked all at once; one that raises or
    takes longer than :data:`AVAILABILITY_TIMEOUT` is reported unavailable, saying so."""
    answers: dict[str, Availability] = {}

    async def ask(name: str, executor: Executor) -> None:
        try:
            with trio.fail_after(AVAILABILITY_TIMEOUT):
                answers[name] = await executor.availability()
        except trio.TooSlowError:
            answers[name] = Availability(False, f"did not answer within {AVAILABILITY_TIMEOUT:g} s")
        except Exception as exc:
            answers[name] = Availability(False, f"{type(exc).__name__}: {exc}")

    async with trio.open_nursery() as nursery:
        for name, executor in executors.items():
            nursery.start_soon(ask, name, executor)
    return {name: answers[name] for name in executors}
