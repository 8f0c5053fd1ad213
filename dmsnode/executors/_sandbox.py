"""The sandbox a ``process`` execution runs in: bubblewrap, unshare namespaces, or none.

:func:`choose` probes what works on this machine (``auto``: bubblewrap, else unshare, else a
plain process) by running ``true`` the way an execution would run. A :class:`Sandbox` turns a
command into the argv the execution's first process execs.

When the node runs as root every execution gets a user of its own: the sandbox is set up as
root (it needs no user namespace then, and can bind any directory) and ``setpriv`` drops to
that user before the command runs; without a sandbox the first process drops itself. As
another user, the sandbox makes a user namespace and everything runs as the node's user, with
the process count capped inside the namespace (``prlimit``), where the kernel counts it per
namespace. docs/executors.md ("process") says what each gives.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, final, get_args

import trio

from ._rlimits import Limits

__all__ = ["SANDBOXES", "Launch", "Sandbox", "SandboxChoice", "SandboxName", "choose"]

SandboxName = Literal["bwrap", "unshare", "none"]
SandboxChoice = Literal["auto", "bwrap", "unshare", "none"]
SANDBOXES: Final[tuple[SandboxName, ...]] = get_args(SandboxName)
#: What of /etc a program commonly needs (users, name resolution, TLS roots, the dynamic
#: linker's cache, Debian's alternatives symlinks); the rest of /etc stays outside.
ETC: Final = (
    "alternatives",
    "ca-certificates",
    "group",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "passwd",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
)
#: Top-level system directories, bound read-only (or re-created as symlinks on merged /usr).
SYSTEM: Final = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
#: The PATH of the sandbox's own tools and of an execution that does not set one.
DEFAULT_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROBE_TIMEOUT: Final = 10.0
#: pid 1 of the ``unshare`` sandbox (``sh -c INIT dmsnode-init MOUNT TMPFS-OPTIONS WORK CMD...``):
#: a private /tmp (the work directory bound back into it if it lives under /tmp), then the
#: command as its child (a pid 1 without handlers ignores SIGTERM), signals passed on, its status
#: passed back (a death by signal N as 128 + N, as shells and bubblewrap do). Its own messages
#: go nowhere.
INIT: Final = """exec 3>&2 2>/dev/null
here=$PWD
cd "$3" || exit 125
"$1" -t tmpfs -o "$2" dmsnode-tmp /tmp || { echo "dmsnode: cannot mount a private /tmp" >&3; exit 125; }
case "$3" in /tmp/*)
  mkdir -p "$3" && "$1" --no-canonicalize --bind . "$3" || { echo "dmsnode: cannot bind $3 under /tmp" >&3; exit 125; }
esac
cd "$here" || exit 125
shift 3
trap 'kill -TERM "$c"' TERM
trap 'kill -INT "$c"' INT
trap 'kill -HUP "$c"' HUP
"$@" 2>&3 3>&- &
c=$!
while :; do
  wait "$c"; s=$?
  kill -0 "$c" || exit "$s"
done
"""
#: How the sandboxes' tools say they could not exec the command (the last line of stderr).
_EXEC_FAILED: Final = (
    "bwrap: execvp ",
    "setpriv: failed to execute ",
    "prlimit: failed to execute ",
)
_TOOL_PREFIXES: Final = ("bwrap: ", "unshare: ", "setpriv: ", "prlimit: ", "dmsnode: ")


@final
@dataclass(frozen=True, slots=True)
class Launch:
    """How the first process of an execution starts: the argv it execs, the user it switches
    to itself (``uid``/``gid``, when no sandbox does), and what else it does first."""

    argv: list[str]
    uid: int | None = None
    gid: int | None = None
    no_new_privs: bool = False
    #: Keep orphans below the monitor (without a pid namespace to hold them).
    subreaper: bool = False
    #: Set ``RLIMIT_NPROC`` in the first process (else the sandbox sets it inside).
    nproc_rlimit: bool = False
    #: The execution shares the node's user, so its ``RLIMIT_NPROC`` must leave room for what
    #: that user runs already (the kernel counts per user).
    shared_user: bool = False


@final
@dataclass(frozen=True)
class Sandbox:
    """One way of isolating executions. ``privileged``: the node is root, and each execution
    runs as a user of its own. ``tools``: absolute paths of the programs it uses."""

    name: SandboxName
    privileged: bool
    tools: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_launcher(self) -> bool:
        """Whether the first process is the sandbox's (not the command's): it and the pid
        namespace's init are then plumbing, not signalled on stop."""
        return self.name != "none"

    @property
    def subreaper(self) -> bool:
        """Whether the monitor must keep orphans below it (no pid namespace holds them)."""
        return self.name == "none"

    @property
    def signals_as_codes(self) -> bool:
        """Whether a death by signal N reaches the monitor as exit code 128 + N."""
        return self.name != "none"

    def launch(
        self,
        command: Sequence[str],
        *,
        work: Path,
        cwd: Path,
        uid: int | None,
        limits: Limits,
    ) -> Launch:
        """The first process's argv and duties for ``command``, run in ``cwd`` with ``work``
        its only writable directory, as ``uid`` (its own group too) when privileged."""
        if self.privileged and uid is None:
            raise ValueError("a privileged sandbox needs the execution's uid")
        if self.name == "none":
            if self.privileged:
                return Launch(list(command), uid, uid, no_new_privs=True, subreaper=self.subreaper,
                              nproc_rlimit=True)  # fmt: skip
            return Launch(list(command), subreaper=self.subreaper, nproc_rlimit=True,
                          shared_user=True)  # fmt: skip
        inner = self._drop(uid, limits) + list(command)
        if self.name == "bwrap":
            argv = [self.tools["bwrap"], *self._bwrap_namespaces(limits.network)]
            argv += _bwrap_filesystem(work, cwd, limits)
            if self.privileged:
                argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
            return Launch([*argv, "--", *inner], nproc_rlimit=self.privileged)
        tmp = "mode=1777,nosuid,nodev" + (f",size={limits.file_size}" if limits.file_size else "")
        argv = [self.tools["unshare"]]
        if not self.privileged:
            argv += ["--user", "--map-root-user"]
        argv += ["--pid", "--fork", "--kill-child", "--mount", "--mount-proc", "--ipc", "--uts"]
        if not limits.network:
            argv.append("--net")
        argv += ["--propagation", "private", "--", self.tools["sh"], "-c", INIT, "dmsnode-init"]
        argv += [self.tools["mount"], tmp, str(work)]
        return Launch([*argv, *inner], nproc_rlimit=self.privileged)

    def _drop(self, uid: int | None, limits: Limits) -> list[str]:
        """What runs the command inside: ``setpriv`` to the execution's user (privileged), or
        ``prlimit`` capping the processes inside the user namespace."""
        if self.privileged:
            return [
                self.tools["setpriv"],
                f"--reuid={uid}",
                f"--regid={uid}",
                "--clear-groups",
                "--no-new-privs",
                "--inh-caps=-all",
                "--",
            ]
        return [self.tools["prlimit"], f"--nproc={limits.pids}", "--"]

    def _bwrap_namespaces(self, network: bool) -> list[str]:
        if self.privileged:  # no user namespace: it would map root only
            spaces = ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
            return [*spaces, *([] if network else ["--unshare-net"]), "--new-session"]
        return ["--unshare-all", *(["--share-net"] if network else []), "--new-session"]

    def failure(self, exit_code: int | None, stderr_tail: Sequence[str]) -> str | None:
        """Why the sandbox did not run the command, if its last words say so."""
        if self.name == "none" or not stderr_tail:
            return None
        last = stderr_tail[-1].strip()
        if exit_code in (1, 126, 127):
            for prefix in _EXEC_FAILED:
                if last.startswith(prefix):
                    what, _, why = last[len(prefix) :].rpartition(": ")
                    return f"could not run {what!r}: {why}"
        if exit_code in (1, 125) and last.startswith(_TOOL_PREFIXES):
            return f"the sandbox could not start: {last}"
        return None

    def describe(self) -> str:
        """What it isolates, for ``availability().details``."""
        if self.name == "bwrap":
            return (
                "bubblewrap: own mount, pid, ipc, uts and cgroup namespaces, and network "
                "unless the execution has ports or limits.network=1; /usr and a few files "
                "of /etc read-only, private /tmp, /dev and /proc; the work directory is the "
                "only writable place"
            )
        if self.name == "unshare":
            return (
                "unshare: own mount, pid, ipc and uts namespaces, and network unless the "
                "execution has ports or limits.network=1; private /tmp and /proc; the host's "
                "other files are visible with the execution user's permissions"
            )
        return (
            "none: a plain process sharing the host's files, processes and network, with "
            "the execution user's permissions"
        )


def _bwrap_filesystem(work: Path, cwd: Path, limits: Limits) -> list[str]:
    argv = ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM:
        path = Path("/") / name
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    for name in ETC:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777"]
    if limits.file_size:
        argv += ["--size", str(limits.file_size)]
    argv += ["--tmpfs", "/tmp"]
    for parent in reversed(work.parents):  # reachable by the execution's user
        if parent != Path("/"):
            argv += ["--perms", "0755", "--dir", str(parent)]
    argv += ["--bind", str(work), str(work), "--remount-ro", "/"]  # its own root, read-only
    return [*argv, "--chdir", str(cwd)]


def _tools(name: SandboxName, privileged: bool) -> tuple[dict[str, str], str | None]:
    """The programs a sandbox needs, found on this machine, or which one is missing."""
    needed = {"bwrap": ["bwrap"], "unshare": ["unshare", "mount", "sh"], "none": []}[name]
    if name != "none":
        needed.append("setpriv" if privileged else "prlimit")
    found = {}
    for tool in needed:
        path = shutil.which(tool, path=DEFAULT_PATH)
        if path is None:
            return {}, f"{tool} is not installed"
        found[tool] = path
    return found, None


async def probe(sandbox: Sandbox, root: Path, uid: int | None) -> str | None:
    """Why ``sandbox`` cannot run ``true`` here, in ``root`` (``None``: it can)."""
    if sandbox.name == "none":
        return None
    true = shutil.which("true", path=DEFAULT_PATH) or "/bin/true"
    launch = sandbox.launch([true], work=root, cwd=root, uid=uid, limits=Limits())
    try:
        with trio.fail_after(PROBE_TIMEOUT):
            done = await trio.run_process(
                launch.argv,
                check=False,
                stdin=subprocess.DEVNULL,
                capture_stdout=True,
                capture_stderr=True,
                env={"PATH": DEFAULT_PATH},
                cwd=root,
            )
    except OSError as exc:
        return f"{launch.argv[0]}: {exc.strerror}"
    except trio.TooSlowError:
        return f"{sandbox.name} did not run `true` within {PROBE_TIMEOUT:g} s"
    if done.returncode != 0:
        words = done.stderr.decode(errors="replace").strip().splitlines()
        said = words[-1] if words else f"exit code {done.returncode}"
        return f"{sandbox.name} cannot run here: {said}"
    return None


async def choose(
    requested: SandboxChoice, *, root: Path, privileged: bool, uid: int | None
) -> tuple[Sandbox | None, dict[str, str]]:
    """The sandbox to use (``auto``: the first of bwrap, unshare, none that works), or
    ``None`` if the one requested does not work; and why each one tried did not."""
    names: Sequence[SandboxName] = SANDBOXES if requested == "auto" else (requested,)
    why_not: dict[str, str] = {}
    for name in names:
        tools, missing = _tools(name, privileged)
        if missing is not None:
            why_not[name] = missing
            continue
        sandbox = Sandbox(name, privileged, tools)
        problem = await probe(sandbox, root, uid)
        if problem is None:
            return sandbox, why_not
        why_not[name] = problem
    return None, why_not
