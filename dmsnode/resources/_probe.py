"""Running a vendor's command-line tool (``nvidia-smi`` and friends) without trusting it.

A tool that is not installed is not an error: :func:`run_tool` returns ``None``. A tool that
cannot start or does not finish within the timeout raises :class:`ToolFailed`; on timeout the
tool and everything it started (it runs in its own process group) are killed with SIGKILL and
reaped before :func:`run_tool` returns, so a hung driver never leaves a process behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, final

import trio

__all__ = ["ToolFailed", "ToolOutput", "UnexpectedOutput", "count", "first_line", "run_tool"]

log = logging.getLogger("dmsnode.resources")

#: How much of a tool's complaint is quoted in a warning.
_QUOTE: Final = 200
#: More digits than any index or size a tool can mean (2**64 has 20).
_MAX_DIGITS: Final = 20


class ToolFailed(Exception):
    """A tool could not be run, exited with an error or hung; the message names the tool."""


class UnexpectedOutput(ValueError):
    """A tool printed something its parser does not understand; the message says what."""


@final
@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a tool that ran to the end printed, and how it exited."""

    tool: str
    returncode: int
    stdout: str
    stderr: str

    def check(self, reason: str = "") -> ToolOutput:
        """Self if the tool exited with 0; else :class:`ToolFailed` quoting ``reason`` or,
        without one, the first line the tool printed."""
        if self.returncode == 0:
            return self
        if self.returncode < 0:
            how = f"was killed by signal {-self.returncode}"
        else:
            how = f"exited with status {self.returncode}"
        said = first_line(reason) or first_line(self.stdout) or first_line(self.stderr)
        raise ToolFailed(f"{self.tool} {how}" + (f": {said}" if said else ""))


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, shortened to fit in a warning."""
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= _QUOTE else line[: _QUOTE - 1] + "…"
    return ""


def count(text: str, what: str) -> int:
    """A whole number a tool printed (plain ASCII digits); :class:`UnexpectedOutput` naming
    ``what`` if it is anything else."""
    digits = text.strip()
    if not digits.isascii() or not digits.isdigit() or len(digits) > _MAX_DIGITS:
        raise UnexpectedOutput(f"{what} is not a whole number: {text[:40]!r}")
    return int(digits)


async def run_tool(argv: Sequence[str], *, timeout: float) -> ToolOutput | None:
    """Run ``argv`` (its first item looked up on ``PATH``) with no input and capture its output.

    ``None`` when the tool is not installed. :class:`ToolFailed` when it cannot be started or
    takes longer than ``timeout`` seconds (it is then killed). A non-zero exit is returned, not
    raised: some tools say "no device" that way (see :meth:`ToolOutput.check`).
    """
    tool = argv[0]
    path = shutil.which(tool)
    if path is None:
        log.debug("%s is not installed (not on PATH): skipped", tool)
        return None
    try:
        with trio.fail_after(timeout):
            done = await trio.run_process(
                [path, *argv[1:]],
                stdin=b"",
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                start_new_session=True,
                deliver_cancel=_kill_group,
            )
    except trio.TooSlowError:
        raise ToolFailed(f"{tool} did not finish within {timeout:g} s and was killed") from None
    except OSError as exc:
        raise ToolFailed(f"{tool} could not be started: {exc.strerror or exc}") from None
    return ToolOutput(
        tool=tool,
        returncode=done.returncode,
        stdout=done.stdout.decode("utf-8", errors="replace"),
        stderr=done.stderr.decode("utf-8", errors="replace"),
    )


async def _kill_group(process: trio.Process) -> None:
    """Kill the tool and whatever it started: it leads its own process group."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()  # if the group is already gone but the leader is not yet reaped
