"""``dmsnode demo`` runs end to end and leaves nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest


@pytest.mark.slow
def test_demo_as_a_subprocess(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dmsnode", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path), "TMPDIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count(" ready: p2p /ip4/127.0.0.1/tcp/") == 3
    # The hello ensemble ran to completion, and its output was shown.
    assert "hello from a process allocation" in out or "hello from a NuNet ensemble" in out
    assert "Completed: every task completed" in out
    # The service pair ran, healthy, answered, and was shut down.
    assert out.count(": running, healthy, ports ") == 2
    assert "GET http://127.0.0.1:18080/ -> HTTP/1.0 200 OK" in out
    assert "Completed: shut down on request" in out
    assert out.count(": 0 commitments or allocations held") == 2
    assert "Unauthorized: no delegation for /dms/node/status" in out
    assert "done: all three stopped" in out
    # Nothing written outside its temporary directory, which it removed.
    assert list(tmp_path.iterdir()) == []
    # No daemon left running.
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if p.info["cmdline"]
        and "dmsnode" in " ".join(p.info["cmdline"])
        and " run" in " ".join(p.info["cmdline"])
        and str(tmp_path) in " ".join(p.info["cmdline"])
    ]
    assert leftovers == []
