"""Fixtures shared by the executors' tests."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import psutil  # type: ignore[import-untyped]
import pytest


@pytest.fixture
def no_process_left() -> Iterator[None]:
    """Fails a test that leaves a process of its own behind (a child of the test process,
    however deep, zombies included), after giving them 3 s to end; kills them so that the next
    test starts clean. Opt in with ``pytestmark = pytest.mark.usefixtures("no_process_left")``.
    """
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 3.0
    while True:
        left = [p for p in me.children(recursive=True) if p.pid not in before]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    described = []
    for process in left:
        try:
            described.append(f"{process.pid} {process.status()} {process.cmdline()[:4]}")
            process.kill()
        except psutil.Error:
            continue
        with contextlib.suppress(ChildProcessError):
            os.waitpid(process.pid, os.WNOHANG)  # a zombie child of ours
    assert not described, f"processes left behind: {described}"
