"""The examples run, as a reader would run them, and say what they claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_ping_pong() -> None:
    out = run("ping_pong.py", "200")
    assert "before the grant, alice refuses: no delegation for /pingpong/ping" in out
    assert "200 signed, authorised round trips" in out
    assert "verified 1 delegation signature(s)" in out  # memoised after the first call


def test_supervision() -> None:
    out = run("supervision.py")
    lines = out.splitlines()
    assert lines.count("team: started") == 2  # the third crash escalated to the team
    assert "  flaky: started (instance 4)" in lines
    assert out.count("-> instance") == 3
