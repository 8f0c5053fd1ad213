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
    assert out.count("heard it (authorised by its root anchor)") == 2
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
