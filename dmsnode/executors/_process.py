"""The ``process`` executor: each execution is a command of this node, sandboxed and limited.

Every execution has a directory ``ROOT/<allocation id>/``: the command runs in its ``work/``
subdirectory (the only place it may write), and beside it are the executor's own files, out of
the command's reach: ``execution.json`` (the spec and how it was started), ``log.jsonl``
(timestamped output), ``exit.json`` (how it ended) and ``stop.json`` (a stop was asked).

Each execution has a monitor, :mod:`._shim`, in a session of its own: the command's output goes
to it through pipes and from it to ``log.jsonl``, and it writes ``exit.json`` when the command
ends. The node is only the monitor's parent until it restarts: a new executor on the same root
finds the monitors again by the pid and start time in ``execution.json`` (:meth:`recover`),
watches them through a pidfd, and reads the files. Nothing here kills an execution except
:meth:`ProcessExecution.stop`.

Starting a monitor (a Python interpreter) and moving a process into a cgroup take tens of
milliseconds, so the executor keeps a *spare* ready: a monitor already started, with its
execution's first process already forked and in fresh cgroups, and (as root) a uid claimed for
it. :meth:`ProcessExecutor.start` sends the first process its configuration (a pipe) and the
monitor its execution's directory (a socket, on which the monitor says when it is done), and a
task of the executor's nursery makes the next spare, forked by the spare maker (:class:`_Maker`).
Leaving the executor kills the spare and the maker; a spare or maker whose node dies sees its
channels end, and ends (see :mod:`._shim`).

Isolation (:mod:`._sandbox`), limits (:mod:`._rlimits`, :mod:`._cgroups`) and what each gives
are in docs/executors.md ("process").
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import marshal
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, final

import psutil  # type: ignore[import-untyped]  # no stubs in the dev dependencies
import trio

from ..errors import ExecutionRefused, ExecutorError, ExecutorUnavailable
from ..resources import Resources, format_bytes
from . import _shim
from ._cgroups import Cgroup, CgroupLimits, CgroupSupport, detect
from ._interface import (
    Availability,
    Execution,
    ExecutionSpec,
    ExecutionStatus,
    Executor,
    LogLine,
    PortMapping,
    State,
    Stats,
)
from ._rlimits import Limits, limits_for
from ._sandbox import DEFAULT_PATH, SANDBOXES, Launch, Sandbox, SandboxChoice, choose

__all__ = [
    "DEFAULT_UID_BASE",
    "UID_RANGE",
    "ProcessExecution",
    "ProcessExecutor",
    "final_status",
]

log = logging.getLogger("dmsnode.executors.process")

#: How the monitor starts: its module imported from its directory, so that its cached bytecode
#: is used (a script would be compiled at every start). Imported here once to make that cache.
_MONITOR: Final = (
    f"import sys; sys.path[0:0] = [{str(Path(_shim.__file__).parent)!r}]; import _shim; "
    "_shim.run(sys.argv[1:])"
)
#: When the node runs as root, execution N runs as uid (and gid) ``DEFAULT_UID_BASE + N``:
#: numbers no account uses, one per live execution of this root.
DEFAULT_UID_BASE: Final = 2_000_000_000
UID_RANGE: Final = 65536
#: How often a follower of the logs looks for new lines.
LOG_POLL: Final = 0.05
#: How long a stop waits for the monitor to see the end once everything got SIGKILL.
KILL_TIMEOUT: Final = 10.0
#: How long a stop goes on killing what an execution keeps forking (no cgroup, no namespace).
KILL_ROUNDS: Final = 2.0
#: How often the uid claimed for a spare monitor is renewed (claims older than
#: :data:`_CLAIM_GRACE` with no process of their uid are taken over).
CLAIM_REFRESH: Final = 20.0
#: How long the spare maker may take to answer (it may still be starting).
MAKER_TIMEOUT: Final = 10.0
#: How long ``start`` waits for the spare being made before it starts a monitor itself.
SPARE_WAIT: Final = 1.0
#: How long the uids that processes run as, looked up when a uid is claimed, are kept.
UIDS_SEEN_FOR: Final = 5.0
#: A safe directory name: what an allocation id must be here.
_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RECORD: Final = "execution.json"
_CONFIG: Final = "shim.cfg"
_EXIT: Final = "exit.json"
_STOP: Final = "stop.json"
_LOG: Final = "log.jsonl"
_SHIM_LOG: Final = "shim.log"
_WORK: Final = "work"
_LOCK: Final = ".lock"
_READ: Final = 1 << 20
#: What a program says on stderr when it runs out of memory under an address-space rlimit.
_OUT_OF_MEMORY: Final = ("MemoryError", "Cannot allocate memory", "bad_alloc", "out of memory")


# -- files -------------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    """Replace ``path`` (mode 0600) so that a reader sees the old or the new file, whole.
    No fsync: what must survive is a restart of the node, not of the machine."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, path)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    _write(path, json.dumps(data, indent=1).encode())


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ExecutorError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ExecutorError(f"cannot read {path}: not a JSON object")
    return data


def _remove_tree(path: Path) -> None:
    """``rm -rf``, also through directories their owner made unreadable."""

    def retry(function: Any, name: str, _: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            if os.path.isdir(name) and not os.path.islink(name):
                os.chmod(name, 0o700)
        function(name)

    if path.exists():
        shutil.rmtree(path, onerror=retry)


# -- the spec on disk ----------------------------------------------------------------------------


def _spec_to_dict(spec: ExecutionSpec) -> dict[str, Any]:
    return {
        "allocation_id": spec.allocation_id,
        "ensemble_id": spec.ensemble_id,
        "image": spec.image,
        "command": list(spec.command),
        "entrypoint": None if spec.entrypoint is None else list(spec.entrypoint),
        "env": dict(spec.env),
        "working_dir": spec.working_dir,
        "user": spec.user,
        "resources": spec.resources.to_dict(),
        "limits": dict(spec.limits),
        "ports": [[p.host_port, p.container_port, p.protocol] for p in spec.ports],
        "privileged": spec.privileged,
        "labels": dict(spec.labels),
    }


def _spec_from_dict(data: Mapping[str, Any]) -> ExecutionSpec:
    entrypoint = data.get("entrypoint")
    return ExecutionSpec(
        allocation_id=data["allocation_id"],
        ensemble_id=data.get("ensemble_id", ""),
        image=data.get("image", ""),
        command=tuple(data.get("command", ())),
        entrypoint=None if entrypoint is None else tuple(entrypoint),
        env=dict(data.get("env", {})),
        working_dir=data.get("working_dir", ""),
        user=data.get("user", ""),
        resources=Resources.from_dict(data.get("resources", {})),
        limits=dict(data.get("limits", {})),
        ports=tuple(PortMapping(h, c, p) for h, c, p in data.get("ports", ())),
        privileged=bool(data.get("privileged", False)),
        labels=dict(data.get("labels", {})),
    )


# -- processes -----------------------------------------------------------------------------------


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): with the pid, names one process for good.
    ``None`` if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rpartition(b")")[2].split()
    except OSError:
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def _alive(pid: int, ticks: int | None) -> bool:
    """Whether the process that started at ``ticks`` as ``pid`` still runs (``None``: it had
    ended before its start time could be read)."""
    return ticks is not None and _start_ticks(pid) == ticks


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is this process's child (else its parent will)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _kill_tree(pid: int) -> None:
    """SIGKILL a monitor that has no execution yet, and what it started; reap it (if it is
    this process's child: a spare forked by the maker is the kernel's to reap) and wait until
    they are gone."""
    killed = []
    with contextlib.suppress(psutil.Error):
        monitor = psutil.Process(pid)
        for process in [*monitor.children(recursive=True), monitor]:
            with contextlib.suppress(psutil.Error):
                process.kill()
                killed.append(process)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    deadline = time.monotonic() + KILL_ROUNDS
    for process in killed:  # until dead: a zombie is (its reaper may be slow to reap it)
        with contextlib.suppress(psutil.Error):
            while process.status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
                time.sleep(0.001)


async def _reap_when_gone(pid: int) -> None:
    """Reap a monitor that said it is done (it exits at once) if it is this process's child
    (one the maker forked is the kernel's to reap). Cancelled, it waits without checkpoints
    (a second at most)."""
    if not _running_child(pid):
        return
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        pidfd = None
    try:
        if pidfd is not None:
            with trio.move_on_after(KILL_TIMEOUT):
                await trio.lowlevel.wait_readable(pidfd)
    finally:
        if pidfd is not None:
            os.close(pidfd)
        _reap_within(pid, 1.0)


def _running_child(pid: int) -> bool:
    """Whether ``pid`` is a child of this process that has not ended (one that has is
    reaped)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == 0
    except ChildProcessError:
        return False


def _reap_within(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while _running_child(pid) and time.monotonic() < deadline:
        time.sleep(0.001)


def _namespace_init(pid: int) -> bool:
    """Whether ``pid`` is pid 1 of a pid namespace below this one (a sandbox's init)."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    return len(ids) > 1 and ids[-1] == "1"
    except OSError:
        pass
    return False


def _nproc(launch: Launch, limits: Limits) -> int | None:
    """The ``RLIMIT_NPROC`` of an execution's first process, if it gets one. Sharing the node's
    user, it must leave room for the tasks that user has already (a rough cap: they come and
    go)."""
    if not launch.nproc_rlimit:
        return None
    if not launch.shared_user:
        return limits.pids
    return _tasks_by_uid().get(os.getuid(), 0) + limits.pids


def _tasks_by_uid() -> dict[int, int]:
    """How many tasks (threads) live processes run as each real uid. Read from
    ``/proc/*/status`` directly: four times faster than psutil, and it runs for every
    execution (spare)."""
    tasks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as file:
                status = file.read()
        except OSError:
            continue  # gone meanwhile
        uid, threads = _status_field(status, b"\nUid:"), _status_field(status, b"\nThreads:")
        if uid is not None:
            tasks[uid] = tasks.get(uid, 0) + (threads or 1)
    return tasks


def _status_field(status: bytes, name: bytes) -> int | None:
    """The first number after ``name`` in a ``/proc/PID/status``."""
    start = status.find(name)
    if start < 0:
        return None
    start += len(name)
    end = status.find(b"\n", start)
    words = status[start : end if end >= 0 else None].split()
    return int(words[0]) if words else None


def _monitor_channels() -> tuple[tuple[int, int], tuple[int, int]]:
    """The monitor's two channels (``_shim._NODE``, ``_shim._GO``), each as (the node's end,
    the monitor's end): a socket that carries the execution's directory one way and "done"
    the other, and the pipe the node writes the first process's configuration to. The node's
    ends are not inheritable: no other child of the node holds them, so that either side ends
    when the other does."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    go_r, go_w = os.pipe()
    return (ours.detach(), theirs.detach()), (go_w, go_r)


def _spawn_monitor(arguments: Sequence[str], log: Path | None) -> tuple[int, int, int]:
    """Start a monitor in a session of its own, its stderr to ``log`` (``None``: nowhere until
    it has an execution); its pid and the node's ends of its channels (:func:`_hand_over`;
    closing them unused makes the monitor end)."""
    argv = [sys.executable, "-I", "-S", "-c", _MONITOR, *arguments]
    logged = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    (order, theirs), (go, go_r) = _monitor_channels()
    try:
        pid = os.posix_spawn(
            sys.executable,
            argv,
            {"PATH": DEFAULT_PATH},
            setsid=True,
            setsigmask=(),
            setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, theirs, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_OPEN, 2, str(log or os.devnull), logged, 0o600),
                (os.POSIX_SPAWN_DUP2, go_r, 3),
            ],
        )
    except BaseException:
        os.close(order)
        os.close(go)
        raise
    finally:
        os.close(theirs)
        os.close(go_r)
    return pid, order, go


@final
@dataclass(slots=True)
class _Spare:
    """A monitor started before its execution is known: its first process is forked (and in
    ``cgroup``), ``uid`` is claimed for it (``claim``: the claim's token). The node's ends of
    its channels: ``order`` (the socket its execution's directory goes to) and ``go`` (the
    pipe its first process's configuration goes to); -1 once closed."""

    pid: int
    ticks: int | None
    order: int
    go: int
    cgroup: Cgroup | None
    uid: int | None
    claim: str | None

    def close(self) -> None:
        """Close the node's ends of its channels (an unused spare then ends on its own)."""
        for fd in (self.go, self.order):
            if fd >= 0:
                os.close(fd)
        self.go = self.order = -1


def _hand_over(spare: _Spare, directory: Path, config: bytes) -> int:
    """Give ``spare`` its execution: ``config`` to its first process, the directory (whose
    ``shim.cfg`` is written) to the monitor. The socket on which it will say "done"."""
    go, spare.go = spare.go, -1
    try:
        if len(config) > 65536:  # the size of a pipe: it would wait for the first process
            with contextlib.suppress(OSError):
                fcntl.fcntl(go, fcntl.F_SETPIPE_SZ, len(config))
        sent = 0
        while sent < len(config):
            sent += os.write(go, config[sent:])
    except BrokenPipeError:
        pass  # it died: its watcher finds it gone and says so
    finally:
        os.close(go)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        os.write(spare.order, bytes(directory) + b"\n")  # to an empty socket: it fits
    order, spare.order = spare.order, -1
    return order


@final
class _Maker:
    """The spare maker: an interpreter with the monitor loaded, started once per executor,
    that makes each spare by forking itself (:func:`._shim._serve`): a fork costs about a
    millisecond of CPU where an interpreter start costs ten or more, on a machine that is
    meanwhile running the execution the last spare was taken for. The node talks to it
    over a socket; when the node dies, it ends."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", "-c", _MONITOR, _shim.MAKER],
                {"PATH": DEFAULT_PATH},
                setsid=True,
                setsigmask=(),
                setsigdef=(signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
                ],
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.channel = ours

    async def make(self, arguments: Sequence[str]) -> tuple[int, int, int]:
        """A spare monitor with these arguments: its pid and the node's ends of its
        channels."""
        (order, theirs), (go, go_r) = _monitor_channels()
        try:
            try:
                message = marshal.dumps(list(arguments))
                socket.send_fds(self.channel, [message], [theirs, go_r])
            finally:
                os.close(theirs)
                os.close(go_r)
            with trio.fail_after(MAKER_TIMEOUT):  # it may still be starting
                await trio.lowlevel.wait_readable(self.channel)
            reply = self.channel.recv(64)
            if not reply:
                raise OSError(f"the spare maker (pid {self.pid}) ended")
            return int(reply), order, go
        except BaseException:
            os.close(order)  # a spare made all the same ends on its own
            os.close(go)
            raise

    def close(self) -> None:
        self.channel.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


# -- how an execution ended ------------------------------------------------------------------------


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def final_status(
    record: Mapping[str, Any],
    ended: Mapping[str, Any] | None,
    stop: Mapping[str, Any] | None,
) -> ExecutionStatus:
    """An execution's final status from its ``execution.json``, ``exit.json`` (``None``: the
    monitor left none) and ``stop.json`` (``None``: no stop was asked)."""
    started = record.get("started_at")
    if ended is None:
        return ExecutionStatus(
            State.FAILED,
            reason="its monitor ended without saying how the execution ended (see shim.log); "
            + (
                "what was left of it in its cgroup was killed"
                if record.get("cgroups")
                else "processes it started may still run"
            ),
            started_at=started,
            finished_at=time.time(),
        )
    finished = float(ended["finished_at"])
    limits = record.get("limits", {})
    tail: Sequence[str] = ended.get("stderr_tail") or ()
    error = ended.get("error")
    if error:
        program = record["argv"][0]
        if error["stage"] == "exec":
            reason = f"could not run {program!r}: {error['message']}"
        else:
            reason = f"could not start {program!r} ({error['stage']}): {error['message']}"
        return ExecutionStatus(State.FAILED, 127, reason, started, finished)
    code: int | None = ended.get("exit_code")
    number: int | None = ended.get("signal")
    sandbox = Sandbox(record["sandbox"], bool(record.get("privileged")))
    failure = sandbox.failure(code, tail)
    if failure is not None:
        return ExecutionStatus(State.FAILED, code, failure, started, finished)
    exact = number is not None  # the sandboxes pass a death by signal N on as 128 + N
    if (
        number is None
        and code is not None
        and code > 128
        and sandbox.signals_as_codes
        and _signal_name(code - 128) is not None
    ):
        number = code - 128
    exit_code = 128 + number if number is not None else code
    if stop is not None and float(stop["at"]) <= finished:
        reason = "stopped on request"
        if stop.get("killed"):
            reason += f" (killed after {float(stop['grace']):g} s of grace)"
        return ExecutionStatus(State.STOPPED, exit_code, reason, started, finished)
    memory = limits.get("memory")
    out_of_memory = "out of memory" + (f" (limit {format_bytes(memory)})" if memory else "")
    notes = []
    if ended.get("pids_max"):
        notes.append(f"the limit of {limits.get('pids')} processes was reached")
    if exit_code == 0:
        if ended.get("oom_kills"):
            notes.insert(0, f"a process was killed: {out_of_memory}")
        return ExecutionStatus(State.COMPLETED, 0, "; ".join(notes), started, finished)
    cpu_limit = limits.get("cpu_seconds")
    if ended.get("oom_kills"):
        reason = f"killed: {out_of_memory}"
    elif number == signal.SIGXCPU:
        reason = "killed: CPU time limit (SIGXCPU)"
    elif (
        number == signal.SIGKILL and cpu_limit and float(ended.get("cpu_seconds") or 0) >= cpu_limit
    ):
        reason = "killed: CPU time limit (SIGKILL at the hard limit)"
    elif number == signal.SIGXFSZ:
        reason = "killed: file size limit (SIGXFSZ)"
    elif (
        record.get("memory_by") == "rlimit"
        and memory
        and any(word in line for line in tail[-5:] for word in _OUT_OF_MEMORY)
    ):
        reason = f"{out_of_memory}, enforced as an address-space rlimit"
    elif number is not None and exact:
        reason = f"killed by {_signal_name(number) or f'signal {number}'}"
    elif number is not None:
        reason = f"exited with code {exit_code} ({_signal_name(number)})"
    else:
        reason = f"exited with code {exit_code}"
    return ExecutionStatus(State.FAILED, exit_code, "; ".join([reason, *notes]), started, finished)


# -- executions ----------------------------------------------------------------------------------


@final
class ProcessExecution(Execution):
    """One execution of a :class:`ProcessExecutor`, started or found again; ``id`` is the
    allocation id (also its directory's name)."""

    def __init__(
        self,
        executor: ProcessExecutor,
        directory: Path,
        spec: ExecutionSpec,
        record: Mapping[str, Any],
        status: ExecutionStatus,
    ) -> None:
        self.id = spec.allocation_id
        self.spec = spec
        self._executor = executor
        self._dir = directory
        self._record = record
        self._status = status
        self._finished = trio.Event()
        self._cleaned = False
        self._sample: tuple[float, float] | None = None
        #: The node's end of the monitor's socket, for an execution started here (until its
        #: watcher has it).
        self._channel: int | None = None
        self._sandbox = Sandbox(record["sandbox"], bool(record.get("privileged")))
        self._cgroup = Cgroup.from_json(record.get("cgroups"))
        if status.state.finished:
            self._finished.set()

    def __repr__(self) -> str:
        return f"<ProcessExecution {self.id} {self._status.state.value}>"

    @property
    def directory(self) -> Path:
        """Where the executor keeps this execution's files."""
        return self._dir

    @property
    def work_dir(self) -> Path:
        """The command's directory: the only one it may write to."""
        return self._dir / _WORK

    @property
    def pid(self) -> int | None:
        """The pid of the execution's monitor (``None`` if it never started)."""
        shim = self._record.get("shim")
        return None if shim is None else int(shim["pid"])

    def status(self) -> ExecutionStatus:
        return self._status

    async def wait(self) -> ExecutionStatus:
        await self._executor._until(self._finished)
        return self._status

    async def stop(self, grace: float = 10.0) -> ExecutionStatus:
        """SIGTERM to every process of the execution (not the sandbox's own), SIGKILL to all
        after ``grace`` seconds. Cancelled during the grace, it kills at once."""
        if self._finished.is_set():
            return self._status
        self._executor._check_open()
        asked = {"at": time.time(), "grace": grace}
        _write_json(self._dir / _STOP, asked)
        done = False
        try:
            self._signal(signal.SIGTERM, plumbing=False)
            with trio.move_on_after(grace):
                await self._executor._until(self._finished)
            if not self._finished.is_set():
                self._kill(asked)
                with trio.move_on_after(KILL_TIMEOUT):
                    await self._executor._until(self._finished)
                if not self._finished.is_set():
                    raise ExecutorError(
                        f"allocation {self.id} did not end within {KILL_TIMEOUT:g} s of SIGKILL"
                    )
            done = True
        finally:
            # Cancelled (the Cancelled may come wrapped in a group) or closed meanwhile: a
            # stop that was begun is finished at once.
            if not done and not self._finished.is_set():
                self._kill(asked)
        return self._status

    async def logs(
        self, *, follow: bool = False, since: float | None = None
    ) -> AsyncIterator[LogLine]:
        """Both streams in the order they were written; ``follow`` goes on until the execution
        has ended and its last line is read."""
        if self._cleaned:
            raise ExecutorError(f"allocation {self.id} was cleaned up: its logs are gone")
        path = self._dir / _LOG
        offset, rest = 0, b""
        while True:
            ended = self._finished.is_set() or (self._dir / _EXIT).exists()
            chunk = _read_from(path, offset)
            offset += len(chunk)
            *lines, rest = (rest + chunk).split(b"\n")
            for raw in lines:
                line = _log_line(raw)
                if line is not None and (since is None or line.time >= since):
                    yield line
            if len(chunk) == _READ:
                await trio.lowlevel.checkpoint()
                continue
            if not follow or ended:
                return
            with trio.move_on_after(LOG_POLL):
                await self._finished.wait()

    async def stats(self) -> Stats:
        """CPU time, memory and processes of the execution (the cgroup's memory where there is
        one, else the processes' resident memory)."""
        limit = self.spec.resources.ram or None
        if self._finished.is_set():
            ended = _read_json(self._dir / _EXIT) or {}
            return Stats(cpu_seconds=ended.get("cpu_seconds"), memory=0, memory_limit=limit, pids=0)
        await trio.lowlevel.checkpoint()
        processes, _ = self._members()
        cpu, rss = 0.0, 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                cpu += times.user + times.system + times.children_user + times.children_system
                rss += process.memory_info().rss
        now = time.monotonic()
        percent = None
        if self._sample is not None and now > self._sample[0]:
            percent = max(0.0, (cpu - self._sample[1]) / (now - self._sample[0]) * 100)
        self._sample = (now, cpu)
        memory = self._cgroup.memory_usage()
        return Stats(
            cpu_seconds=round(cpu, 3),
            cpu_percent=percent,
            memory=memory if memory is not None else rss,
            memory_limit=limit,
            pids=len(processes),
        )

    async def cleanup(self) -> None:
        """Remove the execution's directory (work files and logs) and its cgroup."""
        if not self._finished.is_set():
            raise ExecutorError(
                f"allocation {self.id} is still running: stop it before cleaning up"
            )
        if self._cleaned:
            return
        problems = self._cgroup.remove()
        if problems:
            log.warning("allocation %s: cgroups left: %s", self.id, "; ".join(problems))
        await trio.to_thread.run_sync(_remove_tree, self._dir)
        self._cleaned = True
        self._executor._forget(self)

    # -- inside ------------------------------------------------------------------------------

    def _monitor(self) -> psutil.Process | None:
        """The monitor, if it is still the process that was started."""
        shim = self._record.get("shim")
        if shim is None or not _alive(int(shim["pid"]), shim.get("start")):
            return None
        with contextlib.suppress(psutil.Error):
            return psutil.Process(int(shim["pid"]))
        return None

    def _members(self) -> tuple[list[psutil.Process], set[int]]:
        """The execution's processes (below the monitor or in its cgroup), and which of them
        are the sandbox's plumbing (its launcher and its pid namespace's init)."""
        found: dict[int, psutil.Process] = {}
        plumbing: set[int] = set()
        monitor = self._monitor()
        if monitor is not None:
            with contextlib.suppress(psutil.Error):
                for child in monitor.children(recursive=True):
                    found[child.pid] = child
                if self._sandbox.has_launcher:
                    plumbing |= {child.pid for child in monitor.children()}
        grouped = self._cgroup.pids()
        if self._cgroup.groups:
            # Seen below the monitor but not in the cgroup a moment later: it ended meanwhile
            # (a churning tree), unless it still runs (it left the cgroup). Without this, two
            # looks at different times would count the dead beside the newborn.
            for pid in found.keys() - grouped:
                with contextlib.suppress(psutil.Error):
                    if found[pid].is_running():
                        continue
                del found[pid]
        for pid in grouped - found.keys():
            with contextlib.suppress(psutil.Error):
                found[pid] = psutil.Process(pid)
        plumbing |= {pid for pid in found if _namespace_init(pid)}
        return list(found.values()), plumbing

    def _signal(self, number: int, *, plumbing: bool) -> None:
        processes, skip = self._members()
        for process in processes:
            if plumbing or process.pid not in skip:
                with contextlib.suppress(psutil.Error):
                    process.send_signal(number)

    def _kill(self, asked: Mapping[str, Any]) -> None:
        """SIGKILL everything of the execution, noting it in ``stop.json`` first. Without a
        cgroup or a pid namespace to take it all at once, rounds of SIGSTOP (a stopped process
        cannot fork) and SIGKILL until nothing is left, for at most :data:`KILL_ROUNDS` s."""
        _write_json(self._dir / _STOP, {**asked, "killed": True})
        self._cgroup.kill()
        deadline = time.monotonic() + KILL_ROUNDS
        while time.monotonic() < deadline:
            processes, _ = self._members()
            if not processes:
                return
            for number in (signal.SIGSTOP, signal.SIGKILL):
                for process in processes:
                    with contextlib.suppress(psutil.Error):
                        process.send_signal(number)

    def _finish(self) -> None:
        if self._finished.is_set():
            return
        ended = stop = None
        try:
            ended = _read_json(self._dir / _EXIT)
            stop = _read_json(self._dir / _STOP)
        except ExecutorError as exc:
            log.error("allocation %s: %s", self.id, exc)
        if ended is None:  # the monitor died: what it left can no longer be watched
            self._cgroup.kill()
        self._status = final_status(self._record, ended, stop)
        self._finished.set()


def _read_from(path: Path, offset: int) -> bytes:
    """Up to 1 MiB of ``path`` from ``offset`` (from the page cache: not worth a thread)."""
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            return file.read(_READ)
    except FileNotFoundError:
        return b""


def _log_line(raw: bytes) -> LogLine | None:
    try:
        item = json.loads(raw)
        return LogLine("stdout" if item["s"] == "o" else "stderr", float(item["t"]), item["l"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a crash of the monitor


# -- the executor --------------------------------------------------------------------------------


@final
class ProcessExecutor(Executor):
    """Runs executions as sandboxed processes of this node, each in ``root/<allocation id>/``.

    ``sandbox``: ``auto`` takes the first of bubblewrap, unshare and none that works here;
    naming one makes the executor unavailable where it does not work. ``cgroups``: use a
    writable cgroup hierarchy where there is one. ``uid_base``: the first uid given to
    executions when the node runs as root. One executor per root at a time (a lock says so).
    """

    name = "process"

    def __init__(
        self,
        root: Path,
        *,
        node_id: str,
        sandbox: SandboxChoice = "auto",
        cgroups: bool = True,
        uid_base: int = DEFAULT_UID_BASE,
    ) -> None:
        if not node_id:
            raise ValueError("node_id must name the node")
        if sandbox not in ("auto", *SANDBOXES):
            raise ValueError(f"sandbox must be auto, {', '.join(SANDBOXES)}; not {sandbox!r}")
        self._root = Path(root)
        self._node_id = node_id
        self._requested: SandboxChoice = sandbox
        self._use_cgroups = cgroups
        self._uid_base = uid_base
        self._privileged = os.geteuid() == 0
        self._sandbox: Sandbox | None = None
        self._why_not: dict[str, str] = {}
        self._cgroups: CgroupSupport | None = None
        self._cgroup_note = "not looked for yet"
        self._problem: str | None = None
        self._lock: int | None = None
        self._used_uids: set[int] = set()
        self._uids_seen: tuple[float, set[int]] | None = None
        self._executions: dict[str, ProcessExecution] = {}
        #: Keep a spare monitor (off for the throw-away executors ``availability()`` makes).
        self._keep_spares = True
        self._spare: _Spare | None = None
        self._maker: _Maker | None = None
        #: Set (and forgotten) when the spare being made is ready (or could not be made).
        self._spare_made: trio.Event | None = None
        self._spare_wanted = trio.Event()
        self._stack = contextlib.AsyncExitStack()
        self._nursery: trio.Nursery | None = None
        self._entered = False
        self._closed = trio.Event()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def node_id(self) -> str:
        return self._node_id

    @property
    def sandbox(self) -> str | None:
        """The sandbox executions get (``None``: not entered yet, or the one asked for does not
        work here)."""
        return None if self._sandbox is None else self._sandbox.name

    async def __aenter__(self) -> ProcessExecutor:
        if self._entered:
            raise RuntimeError("a ProcessExecutor is entered once")
        self._entered = True
        try:
            self._problem = self._open_root()
            if self._problem is None:
                self._sandbox, self._why_not = await self._choose()
                if self._sandbox is None:
                    self._problem = self._sandbox_problem()
                elif self._sandbox.name == "none":
                    why = "; ".join(f"{k}: {v}" for k, v in self._why_not.items())
                    log.warning(
                        "process executor: executions run as plain processes, without a "
                        "sandbox (%s)",
                        why if why else "as asked",
                    )
            if self._use_cgroups:
                self._cgroups, self._cgroup_note = detect()
            else:
                self._cgroup_note = "not used (cgroups=False)"
            self._nursery = await self._stack.enter_async_context(trio.open_nursery())
            if self._keep_spares and self._problem is None:
                self._nursery.start_soon(self._keep_spare)
                try:  # the first spare at once; its maker starts meanwhile, for the next ones
                    self._spare = self._new_monitor(Cgroup.fresh_name(), None)
                except (OSError, ExecutorError) as exc:
                    log.warning("process executor: no spare monitor: %s", exc)
                try:
                    self._maker = _Maker()
                except OSError as exc:
                    log.warning("process executor: no spare maker (spares start afresh): %s", exc)
        except BaseException:
            await self._stack.aclose()
            self._release_root()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop watching; the executions keep running (see :meth:`recover`)."""
        self._closed.set()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        try:
            await self._stack.aclose()
        finally:
            self._nursery = None
            self._discard_spare()  # the keeper did, unless it never ran
            if self._maker is not None:
                self._maker.close()
                self._maker = None
            self._release_root()

    async def availability(self) -> Availability:
        """Whether executions can run here, in which sandbox, with which limits."""
        if not self._entered or self._closed.is_set():
            probe = ProcessExecutor(
                self._root,
                node_id=self._node_id,
                sandbox=self._requested,
                cgroups=self._use_cgroups,
                uid_base=self._uid_base,
            )
            probe._keep_spares = False
            async with probe:
                return await probe.availability()
        await trio.lowlevel.checkpoint()
        details = {
            "root": str(self._root),
            "cgroups": self._cgroups.describe() if self._cgroups else "none",
            "user": (
                f"each execution its own (uid and gid from {self._uid_base})"
                if self._privileged
                else f"the node's (uid {os.geteuid()})"
            ),
        }
        if self._cgroup_note:
            details["cgroups_note"] = self._cgroup_note
        for name, why in self._why_not.items():
            details[f"{name}_unavailable"] = why
        if self._problem is not None:
            return Availability(False, self._problem, details)
        assert self._sandbox is not None
        details["sandbox"] = self._sandbox.name
        details["isolation"] = self._sandbox.describe()
        warnings = []
        if self._sandbox.name == "none":
            warnings.append("no sandbox: executions are plain processes of this machine")
            if not self._privileged:
                warnings.append("they run as the node's user and can read and change its files")
        if self._cgroups is None or "memory" not in self._cgroups.controllers:
            warnings.append("memory is limited as address space (rlimit), not by a cgroup")
        if (
            "pids" not in self._cgroups_controllers()
            and not self._privileged
            and self._sandbox.name == "none"
        ):
            warnings.append(
                "the number of processes is capped roughly (RLIMIT_NPROC counts all the "
                "node user's processes)"
            )
        if self._cgroups is None or "cpu" not in self._cgroups.controllers:
            warnings.append("the CPU share (cores) is not limited, only CPU time")
        if warnings:
            details["warning"] = "; ".join(warnings)
        return Availability(True, details=details)

    async def start(self, spec: ExecutionSpec) -> ProcessExecution:
        """Start ``spec``'s command in its sandbox; once this returns its monitor runs (a
        command that cannot run ends FAILED, "could not run ...")."""
        self._check_open()
        await trio.lowlevel.checkpoint()
        if self._problem is not None or self._sandbox is None:
            raise ExecutorUnavailable(f"the process executor cannot run here: {self._problem}")
        argv, relative = self._check(spec)
        limits = limits_for(spec)
        if self._spare is None and self._spare_made is not None:
            # The next spare is a fork away: sooner than a monitor of this start's own.
            with trio.move_on_after(SPARE_WAIT):
                await self._spare_made.wait()
            self._check_open()
        # From here to the end, no checkpoint: a cancellation cannot leave half a start.
        directory = self._root / spec.allocation_id
        try:
            directory.mkdir()
        except FileExistsError:
            raise ExecutorError(
                f"allocation {spec.allocation_id} already has an execution in {directory}: "
                "recover it or clean it up first"
            ) from None
        except OSError as exc:
            raise ExecutorError(f"cannot make {directory}: {exc.strerror}") from None
        monitor: _Spare | None = None
        try:
            os.chmod(directory, 0o711 if self._privileged else 0o700)
            monitor = self._take_spare() or self._new_monitor(
                Cgroup.name_for(directory), directory / _SHIM_LOG
            )
            uid, cgroup = monitor.uid, monitor.cgroup
            work = directory / _WORK
            cwd = work / relative
            work.mkdir(mode=0o700)
            cwd.mkdir(parents=True, exist_ok=True)
            if uid is not None:
                for path in (cwd, *cwd.relative_to(work).parents):
                    os.chown(work / path, uid, uid)
            if cgroup is not None:
                cgroup.set_limits(CgroupLimits(limits.memory, limits.cpu_cores, limits.pids))
            memory_by_cgroup = cgroup is not None and "memory" in self._cgroups_controllers()
            launch = self._sandbox.launch(argv, work=work, cwd=cwd, uid=uid, limits=limits)
            record: dict[str, Any] = {
                "version": 1,
                "node_id": self._node_id,
                "spec": _spec_to_dict(spec),
                "argv": argv,
                "sandbox": self._sandbox.name,
                "privileged": self._privileged,
                "uid": uid,
                "cgroups": cgroup.to_json() if cgroup is not None else [],
                "limits": limits.to_dict(),
                "memory_by": (
                    ("cgroup" if memory_by_cgroup else "rlimit") if limits.memory else None
                ),
                "started_at": time.time(),
                "shim": {"pid": monitor.pid, "start": monitor.ticks},
            }
            config = {
                "argv": launch.argv,
                "env": self._environment(spec, work, limits),
                "cwd": str(cwd),
                "rlimits": limits.rlimits(
                    memory=not memory_by_cgroup, processes=_nproc(launch, limits)
                ),
                "uid": launch.uid,
                "gid": launch.gid,
                "no_new_privs": launch.no_new_privs,
                "subreaper": launch.subreaper,
                "cgroup_procs": cgroup.procs_files if cgroup is not None else [],
                "cgroup_dirs": [str(p) for _, p, _ in cgroup.groups] if cgroup else [],
                "oom_files": cgroup.oom_files if cgroup is not None else [],
                "pids_files": cgroup.pids_files if cgroup is not None else [],
            }
            configuration = marshal.dumps(config)
            _write(directory / _CONFIG, configuration)
            _write_json(directory / _RECORD, record)
            channel = _hand_over(monitor, directory, configuration)
        except BaseException as exc:
            if monitor is not None:
                self._discard(monitor)
            _remove_tree(directory)
            if isinstance(exc, OSError):
                raise ExecutorError(
                    f"cannot start allocation {spec.allocation_id}: {exc}"
                ) from None
            raise
        status = ExecutionStatus(State.RUNNING, started_at=record["started_at"])
        execution = ProcessExecution(self, directory, spec, record, status)
        execution._channel = channel
        self._track(execution)
        return execution

    async def recover(self) -> list[Execution]:
        """This node's executions in ``root``, running or finished, re-attached: running ones
        are watched again, none is stopped. A directory that cannot be read is logged and
        skipped."""
        self._check_open()
        if self._lock is None:  # the root is someone else's (or cannot be made)
            raise ExecutorUnavailable(f"the process executor cannot recover: {self._problem}")
        found: list[Execution] = []
        for directory in sorted(self._root.iterdir()):
            await trio.lowlevel.checkpoint()
            if not directory.is_dir() or not _ID.fullmatch(directory.name):
                continue
            known = self._executions.get(directory.name)
            if known is not None:
                found.append(known)
                continue
            try:
                record = _read_json(directory / _RECORD)
            except ExecutorError as exc:
                log.error("process executor: skipping %s: %s", directory, exc)
                continue
            if record is None or record.get("node_id") != self._node_id:
                continue
            try:
                execution = self._revive(directory, record)
            except (ExecutorError, KeyError, TypeError, ValueError) as exc:
                log.error("process executor: skipping %s: %s", directory, exc)
                continue
            self._track(execution)
            found.append(execution)
        return found

    # -- inside ------------------------------------------------------------------------------

    def _open_root(self) -> str | None:
        """Make the root and lock it; why it cannot be used, if it cannot."""
        try:
            if not self._root.is_dir():  # a root it did not make keeps its mode
                self._root.mkdir(parents=True)
                os.chmod(self._root, 0o711 if self._privileged else 0o700)
            fd = os.open(self._root / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            return f"cannot use {self._root}: {exc.strerror}"
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return f"{self._root} is in use by another process executor"
        self._lock = fd
        for directory in self._root.iterdir():
            with contextlib.suppress(ExecutorError, OSError):
                record = _read_json(directory / _RECORD)
                if record is not None and isinstance(record.get("uid"), int):
                    self._used_uids.add(record["uid"])
        return None

    def _release_root(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    async def _choose(self) -> tuple[Sandbox | None, dict[str, str]]:
        return await choose(
            self._requested,
            root=self._root,
            privileged=self._privileged,
            uid=self._uid_base if self._privileged else None,
        )

    def _sandbox_problem(self) -> str:
        why = self._why_not.get(self._requested, "it does not work here")
        return f"the {self._requested} sandbox is unavailable: {why}"

    def _cgroups_controllers(self) -> frozenset[str]:
        return self._cgroups.controllers if self._cgroups is not None else frozenset()

    def _check(self, spec: ExecutionSpec) -> tuple[list[str], PurePosixPath]:
        """The argv and the working directory (relative to ``work/``) of ``spec``, or why this
        executor refuses it."""
        who = f"allocation {spec.allocation_id!r}"
        if not _ID.fullmatch(spec.allocation_id):
            raise ExecutionRefused(
                f"{who}: the process executor needs an allocation id that is a safe directory "
                "name (letters, digits, '.', '_' and '-', starting with a letter or digit, at "
                "most 128)"
            )
        argv = [*(spec.entrypoint or ()), *spec.command]
        if not argv or not argv[0]:
            raise ExecutionRefused(f"{who}: the process executor needs a command to run")
        if any("\0" in arg for arg in argv):
            raise ExecutionRefused(f"{who}: the command has a NUL character")
        for key, value in spec.env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise ExecutionRefused(f"{who}: {key!r} cannot be an environment variable")
        if spec.privileged:
            raise ExecutionRefused(f"{who}: the process executor never runs privileged")
        if spec.user:
            raise ExecutionRefused(
                f"{who}: the process executor chooses the user (it cannot run as {spec.user!r})"
            )
        if spec.resources.gpus:
            raise ExecutionRefused(f"{who}: the process executor cannot give GPUs")
        relative = PurePosixPath(spec.working_dir or ".")
        if relative.is_absolute():
            work = PurePosixPath(self._root / spec.allocation_id / _WORK)
            if relative != work and work not in relative.parents:
                raise ExecutionRefused(
                    f"{who}: working_dir {spec.working_dir!r} must be inside the work "
                    "directory (give it relative to it)"
                )
            relative = relative.relative_to(work)
        if ".." in relative.parts:
            raise ExecutionRefused(f"{who}: working_dir {spec.working_dir!r} leaves the work dir")
        return argv, relative

    def _environment(self, spec: ExecutionSpec, work: Path, limits: Limits) -> dict[str, str]:
        """A clean environment: a few defaults, the allocation's names, then ``spec.env``."""
        env = {
            "PATH": DEFAULT_PATH,
            "HOME": str(work),
            "LANG": "C.UTF-8",
            "DMS_ALLOCATION_ID": spec.allocation_id,
            "DMS_WORK_DIR": str(work),
        }
        if spec.ensemble_id:
            env["DMS_ENSEMBLE_ID"] = spec.ensemble_id
        for port in spec.ports:
            env[f"DMS_PORT_{port.container_port}"] = str(port.host_port)
        env.update(spec.env)
        return env

    def _take_uid(self) -> tuple[int, str]:
        """A uid no execution of this node holds and no process on the machine runs as, and
        the token of its claim.

        Several nodes may share a machine (and a uid range), so a uid is claimed machine-wide
        with an exclusive file under :data:`UID_CLAIMS` (released when the execution ends), and
        uids that live processes run as are skipped; each node starts its search at an offset
        from its node id. Two executions sharing a uid would share RLIMIT_NPROC, and processes
        are found by uid.

        The claims are what keeps executions apart (every execution's uid is claimed before
        anything runs as it); the processes are looked for in case claims were lost (a node
        older than them, files removed by hand), which lasts: that look (all of ``/proc``)
        is kept for :data:`UIDS_SEEN_FOR` seconds.
        """
        now = time.monotonic()
        if self._uids_seen is None or now - self._uids_seen[0] > UIDS_SEEN_FOR:
            self._uids_seen = (now, _uids_in_use(self._uid_base, UID_RANGE))
        busy = self._used_uids | self._uids_seen[1]
        start = int.from_bytes(hashlib.sha256(self._node_id.encode()).digest()[:4], "big")
        for step in range(UID_RANGE):
            uid = self._uid_base + (start + step) % UID_RANGE
            if uid in busy:
                continue
            claim = _claim_uid(uid, f"{self._node_id} {self.root}")
            if claim is not None:
                self._used_uids.add(uid)
                return uid, claim
        raise ExecutorError(f"no free uid left in {self._uid_base}+{UID_RANGE}")

    def _revive(self, directory: Path, record: dict[str, Any]) -> ProcessExecution:
        spec = _spec_from_dict(record["spec"])
        started = record.get("started_at")
        shim = record.get("shim")
        if (directory / _EXIT).exists() or (
            shim is not None and not _alive(int(shim["pid"]), shim.get("start"))
        ):
            if shim is not None:
                _reap(int(shim["pid"]))
            ended = _read_json(directory / _EXIT)
            if ended is None:  # the monitor died: what it left can no longer be watched
                Cgroup.from_json(record.get("cgroups")).kill()
            status = final_status(record, ended, _read_json(directory / _STOP))
        elif shim is None:
            status = ExecutionStatus(
                State.FAILED,
                reason="the node stopped while starting it",
                started_at=started,
                finished_at=started,
            )
        else:
            status = ExecutionStatus(State.RUNNING, started_at=started)
        return ProcessExecution(self, directory, spec, record, status)

    def _check_open(self) -> None:
        if self._nursery is None:
            state = "closed" if self._closed.is_set() else "not entered"
            raise ExecutorError(f"the process executor is {state} (use it as `async with`)")

    def _track(self, execution: ProcessExecution) -> None:
        self._executions[execution.id] = execution
        if not execution.status().state.finished:
            assert self._nursery is not None
            self._nursery.start_soon(self._watch, execution)

    def _prepare(self, cgroup_name: str) -> tuple[int | None, str | None, Cgroup | None]:
        """What a monitor needs before it starts: a uid claimed for its execution (as root)
        and its cgroups (empty, without limits yet). Raises what went wrong, having undone
        the rest."""
        uid = claim = None
        try:
            if self._privileged:
                uid, claim = self._take_uid()
            cgroup = self._cgroups.create(cgroup_name) if self._cgroups is not None else None
        except BaseException:
            if uid is not None:
                self._release(uid, claim)
            raise
        return uid, claim, cgroup

    def _unprepare(self, uid: int | None, claim: str | None, cgroup: Cgroup | None) -> None:
        if cgroup is not None:
            cgroup.remove()
        if uid is not None:
            self._release(uid, claim)

    def _monitor_arguments(self, cgroup: Cgroup | None) -> list[str]:
        assert self._sandbox is not None
        kind = _shim.SUBREAPER if self._sandbox.subreaper else _shim.PLAIN
        return [kind, *(cgroup.procs_files if cgroup is not None else ())]

    def _new_monitor(self, cgroup_name: str, log: Path | None) -> _Spare:
        """A monitor waiting for an execution, started afresh (an interpreter start) with
        what :meth:`_prepare` gives. Raises what went wrong, having undone the rest."""
        uid, claim, cgroup = self._prepare(cgroup_name)
        try:
            pid, order, go = _spawn_monitor(self._monitor_arguments(cgroup), log)
        except BaseException:
            self._unprepare(uid, claim, cgroup)
            raise
        return _Spare(pid, _start_ticks(pid), order, go, cgroup, uid, claim)

    async def _make_spare(self) -> _Spare | None:
        """A spare monitor, forked by the spare maker (started afresh without one); ``None``
        (logged) if none can be made: ``start`` then starts a monitor itself."""
        try:
            if self._maker is None:
                return self._new_monitor(Cgroup.fresh_name(), None)
            uid, claim, cgroup = self._prepare(Cgroup.fresh_name())
        except (OSError, ExecutorError) as exc:
            log.warning("process executor: no spare monitor: %s", exc)
            return None
        try:
            pid, order, go = await self._maker.make(self._monitor_arguments(cgroup))
        except BaseException as exc:
            self._unprepare(uid, claim, cgroup)
            if not isinstance(exc, OSError | ValueError | trio.TooSlowError):
                raise
            log.warning("process executor: the spare maker failed (%s): spares start afresh", exc)
            self._maker.close()
            self._maker = None
            return await self._make_spare()
        return _Spare(pid, _start_ticks(pid), order, go, cgroup, uid, claim)

    def _take_spare(self) -> _Spare | None:
        """The spare monitor, if it is alive, for an execution now; the keeper makes the
        next one."""
        spare, self._spare = self._spare, None
        self._spare_wanted.set()
        if spare is None:
            return None
        if not _alive(spare.pid, spare.ticks):
            self._discard(spare)
            return None
        if spare.uid is not None and _claim_token(spare.uid) != spare.claim:
            # Unrenewed for a minute (the node was stopped?), its claim went to another node.
            self._used_uids.discard(spare.uid)
            spare.uid = spare.claim = None
            try:
                spare.uid, spare.claim = self._take_uid()
            except BaseException:
                self._discard(spare)
                raise
        return spare

    def _discard(self, spare: _Spare) -> None:
        """Kill a monitor that has no execution (or whose start failed), remove its cgroups and
        release its uid."""
        _kill_tree(spare.pid)
        spare.close()
        if spare.cgroup is not None:
            problems = spare.cgroup.remove()
            if problems:
                log.warning("process executor: cgroups left: %s", "; ".join(problems))
        if spare.uid is not None:
            self._release(spare.uid, spare.claim)

    def _discard_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            self._discard(spare)

    async def _keep_spare(self) -> None:
        """Own the spare monitor and its maker: make a spare whenever ``start`` took it (or
        found it dead), renew its uid claim while it waits, kill both when the executor
        closes."""
        try:
            while True:
                with trio.move_on_after(CLAIM_REFRESH):
                    await self._spare_wanted.wait()
                spare = self._spare
                if not self._spare_wanted.is_set():
                    if spare is not None and spare.uid is not None:
                        _renew_claim(spare.uid, spare.claim)
                    continue
                self._spare_wanted = trio.Event()
                if spare is None:
                    self._spare_made = made = trio.Event()
                    try:
                        self._spare = await self._make_spare()
                    finally:
                        self._spare_made = None
                        made.set()
        finally:
            self._discard_spare()
            if self._maker is not None:
                self._maker.close()
                self._maker = None

    def _release(self, uid: int, claim: str | None) -> None:
        self._used_uids.discard(uid)
        if claim is None or _claim_token(uid) == claim:  # not one another node took over
            _release_uid(uid)

    def _forget(self, execution: ProcessExecution) -> None:
        if self._executions.get(execution.id) is execution:
            del self._executions[execution.id]
        uid = execution._record.get("uid")
        if isinstance(uid, int):
            self._used_uids.discard(uid)
            _release_uid(uid)

    async def _watch(self, execution: ProcessExecution) -> None:
        """Until the execution's monitor says it is done (on its socket, for an execution
        started here: it then still has to exit) or exits (a pidfd, else polling): then its
        status."""
        shim = execution._record["shim"]
        pid, ticks = int(shim["pid"]), shim.get("start")
        channel, execution._channel = execution._channel, None
        if channel is not None:
            try:
                await trio.lowlevel.wait_readable(channel)  # "done", or the monitor's end
            finally:
                os.close(channel)
            execution._finish()
            await _reap_when_gone(pid)
            return
        pidfd: int | None = None
        with contextlib.suppress(OSError, AttributeError):
            pidfd = os.pidfd_open(pid)
        try:
            if pidfd is not None and _alive(pid, ticks):  # the pidfd is of the right process
                await trio.lowlevel.wait_readable(pidfd)
            else:
                while _alive(pid, ticks):  # noqa: ASYNC110 (not our child: nothing to wait on)
                    await trio.sleep(0.1)
        finally:
            if pidfd is not None:
                os.close(pidfd)
        _reap(pid)
        execution._finish()

    async def _until(self, event: trio.Event) -> None:
        """Wait for ``event``, or raise if the executor closes first (no one to set it)."""
        if event.is_set():
            return
        self._check_open()
        async with trio.open_nursery() as nursery:

            async def on_close() -> None:
                await self._closed.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(on_close)
            await event.wait()
            nursery.cancel_scope.cancel()
        if not event.is_set():
            raise ExecutorError("the process executor closed while waiting")


def _uids_in_use(base: int, span: int) -> set[int]:
    """The real uids in ``[base, base + span)`` that live processes run as."""
    return {uid for uid in _tasks_by_uid() if base <= uid < base + span}


#: Machine-wide claims on execution uids (the node runs as root whenever it hands out uids).
UID_CLAIMS: Final = Path("/run/dmsnode/execution-uids")
#: A claim younger than this is kept even with no process of its uid yet (one is starting).
_CLAIM_GRACE = 60.0


def _claim_uid(uid: int, owner: str) -> str | None:
    """Claim ``uid`` for one execution: the claim's token (random: it tells this claim from a
    later one on the same uid); ``None`` if another holds a live claim on it."""
    UID_CLAIMS.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = UID_CLAIMS / str(uid)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if age < _CLAIM_GRACE or _uids_in_use(uid, 1):
                return None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale: its execution is gone and nothing runs as the uid
            continue
        token = os.urandom(8).hex()
        with os.fdopen(fd, "w") as claim:
            claim.write(f"{owner} {token}\n")
        return token
    return None


def _claim_token(uid: int) -> str | None:
    """The token of the claim on ``uid`` (``None``: unclaimed, or not by this module)."""
    try:
        words = (UID_CLAIMS / str(uid)).read_text().split()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return words[-1] if words else None


def _renew_claim(uid: int, claim: str | None) -> None:
    """Keep a claim on a uid that no process runs as yet from going stale."""
    if _claim_token(uid) == claim:
        with contextlib.suppress(FileNotFoundError):
            os.utime(UID_CLAIMS / str(uid))


def _release_uid(uid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (UID_CLAIMS / str(uid)).unlink()
