"""The monitor of one ``process`` execution: runs it, logs its output, records how it ended.

:class:`~dmsnode.executors.ProcessExecutor` starts it (``python -I -S``, this module imported
from its directory, :func:`run` called with DIR) in a session of its own, so it outlives a restart of the node. It reads ``DIR/shim.cfg`` (marshal),
forks the execution's first process (which joins the cgroups, takes its rlimits and user, and
execs the sandbox or the command), writes its stdout and stderr to ``DIR/log.jsonl`` as
timestamped JSON lines (``{"t": unix time, "s": "o" or "e", "l": text}``), and once it exits
kills what it left behind and writes ``DIR/exit.json``. The node, which may no longer be its
parent, learns the outcome from that file.

Standard library only, and only modules that load in microseconds (no ``json``, ``re``,
``signal`` or ``subprocess``): this runs once per execution, on its critical path.
"""

from __future__ import annotations

import _json
import _signal  # type: ignore[import-not-found]  # signal's C half, without enum
import marshal
import os
import resource
import select
import sys
import time
from typing import Any

_CHUNK = 65536
#: A line longer than this is logged in pieces.
_MAX_LINE = 65536
#: How long to wait for the output pipes to close once everything is dead.
_DRAIN = 2.0
#: How many of the last stderr lines ``exit.json`` keeps (to tell why a sandbox failed).
_TAIL = 20
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
#: Python ignores SIGPIPE and SIGXFSZ; the workload gets the defaults back.
_RESET = (
    _signal.SIGINT,
    _signal.SIGTERM,
    _signal.SIGHUP,
    _signal.SIGQUIT,
    _signal.SIGPIPE,
    _signal.SIGXFSZ,
)


def _encode(value: Any) -> str:
    """JSON for the few types written here (``_json`` is the C half of ``json``)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value))
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_encode(k)}:{_encode(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot encode {type(value).__name__}")


def _prctl(option: int, value: int) -> None:
    import ctypes  # 4 ms: only in the modes that need it

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _child(config: dict[str, Any], out_w: int, err_w: int, status_w: int) -> None:
    """In the forked child: become the execution's first process, then exec. Never returns;
    a failure is written to ``status_w`` as ``stage NUL errno NUL message``."""
    stage = "setup"
    try:
        for signum in _RESET:
            _signal.signal(signum, _signal.SIG_DFL)
        os.setsid()
        os.umask(0o022)
        stage = "cgroup"
        me = str(os.getpid()).encode()
        for path in config["cgroup_procs"]:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, me)
            finally:
                os.close(fd)
        stage = "stdio"
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        stage = "cwd"
        os.chdir(config["cwd"])
        stage = "rlimits"
        for which, soft, hard in config["rlimits"]:
            resource.setrlimit(which, (soft, hard))
        if config["uid"] is not None:
            stage = "user"
            os.setgroups([])
            os.setresgid(config["gid"], config["gid"], config["gid"])
            os.setresuid(config["uid"], config["uid"], config["uid"])
        if config["no_new_privs"]:
            stage = "no_new_privs"
            _prctl(_PR_SET_NO_NEW_PRIVS, 1)
        stage = "exec"
        argv = config["argv"]
        os.execvpe(argv[0], argv, config["env"])
    except BaseException as exc:
        errno = getattr(exc, "errno", None) or 0
        message = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        os.write(status_w, f"{stage}\0{errno}\0{message}".encode(errors="replace"))
    finally:
        os._exit(127)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    return children


def _leftovers(cgroup_procs: list[str], below: bool) -> set[int]:
    """Every process still alive in the execution's cgroups and, with ``below``, below this
    monitor (where orphans go without a pid namespace to hold them)."""
    found: set[int] = set()
    for path in cgroup_procs:
        try:
            with open(path) as procs:
                found.update(int(line) for line in procs if line.strip())
        except OSError:
            pass
    if below:
        children = _children_map()
        todo = [os.getpid()]
        while todo:
            for child in children.get(todo.pop(), ()):
                found.add(child)
                todo.append(child)
    found.discard(os.getpid())
    return found


def _counter(files: list[tuple[str, str]]) -> int:
    """The sum of ``key N`` lines in cgroup event files (``oom_kill``, ``max``)."""
    total = 0
    for path, key in files:
        try:
            with open(path) as events:
                for line in events:
                    name, _, value = line.partition(" ")
                    if name == key:
                        total += int(value)
        except (OSError, ValueError):
            pass
    return total


class _Log:
    """Splits each stream into lines and appends them to ``log.jsonl`` with their time."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", encoding="ascii")  # noqa: SIM115 (closed in main)
        self.pending = {"o": b"", "e": b""}
        self.tail: list[str] = []

    def feed(self, stream: str, data: bytes) -> None:
        now = time.time()
        buffer = self.pending[stream] + data
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            self._write(stream, now, buffer[start : end + 1])
            start = end + 1
        rest = buffer[start:]
        while len(rest) >= _MAX_LINE:
            self._write(stream, now, rest[:_MAX_LINE])
            rest = rest[_MAX_LINE:]
        self.pending[stream] = rest

    def flush_partial(self) -> None:
        now = time.time()
        for stream, rest in self.pending.items():
            if rest:
                self._write(stream, now, rest)
            self.pending[stream] = b""
        self.file.flush()

    def _write(self, stream: str, now: float, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace")
        self.file.write(f'{{"t":{now:.6f},"s":"{stream}","l":{_encode(text)}}}\n')
        if stream == "e":
            self.tail.append(text.rstrip("\n"))
            del self.tail[:-_TAIL]


def _kill_leftovers(cgroup_procs: list[str], below: bool, reap: Any) -> None:
    """SIGKILL what the execution's first process left behind, until nothing is left."""
    for _ in range(100):
        left = _leftovers(cgroup_procs, below)
        if not left:
            return
        for signum in (_signal.SIGSTOP, _signal.SIGKILL):  # stopped, it cannot fork
            for pid in left:
                try:  # noqa: SIM105 (contextlib costs milliseconds to import)
                    os.kill(pid, signum)
                except OSError:
                    pass
        time.sleep(0.01)
        reap()


def run(directory: str) -> None:
    """Monitor the execution of ``directory`` to its end, then exit (without the
    interpreter's teardown: nothing is left to flush)."""
    try:
        _monitor(directory)
    except BaseException:
        import traceback

        traceback.print_exc()  # into shim.log
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)


def _monitor(directory: str) -> None:
    os.umask(0o077)  # logs and status are the node's, not the execution's
    os.closerange(3, 1 << 16)  # whatever the node had open stays with the node
    with open(os.path.join(directory, "shim.cfg"), "rb") as file:
        config: dict[str, Any] = marshal.load(file)
    for signum in (_signal.SIGINT, _signal.SIGHUP, _signal.SIGTERM):
        _signal.signal(signum, _signal.SIG_IGN)  # the node stops executions, not this
    if config["subreaper"]:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # orphans stay below, to be found and reaped
    log = _Log(os.path.join(directory, "log.jsonl"))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(config, out_w, err_w, status_w)
    for fd in (out_w, err_w, status_w):
        os.close(fd)
    failure = b""
    while chunk := os.read(status_r, 4096):
        failure += chunk
    os.close(status_r)

    result: dict[str, Any] = {"exit_code": None, "signal": None, "rusage": None}

    def reap() -> None:
        while True:
            try:
                found, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if found == 0:
                return
            if found == pid:
                if os.WIFSIGNALED(status):
                    result["signal"] = os.WTERMSIG(status)
                else:
                    result["exit_code"] = os.waitstatus_to_exitcode(status)
                result["rusage"] = usage

    try:
        pidfd: int | None = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    poller = select.poll()
    streams = {out_r: "o", err_r: "e"}
    for fd in streams:
        poller.register(fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    deadline: float | None = None  # set once the first process has ended
    while True:
        if deadline is None:
            timeout = 1000 if pidfd is not None else 100  # also reaps adopted orphans
        elif not streams:
            break
        else:
            timeout = int((deadline - time.monotonic()) * 1000)
            if timeout <= 0:
                break  # something outside the execution holds a pipe open: stop reading
        for fd, _ in poller.poll(timeout):
            if fd == pidfd:
                poller.unregister(pidfd)
                os.close(pidfd)
                pidfd = None
                continue
            data = os.read(fd, _CHUNK)
            if data:
                log.feed(streams[fd], data)
            else:
                poller.unregister(fd)
                os.close(fd)
                del streams[fd]
        log.file.flush()
        if deadline is None:
            reap()
            if result["rusage"] is not None:
                _kill_leftovers(config["cgroup_procs"], config["subreaper"], reap)
                deadline = time.monotonic() + _DRAIN
    log.flush_partial()
    log.file.close()

    usage = result["rusage"]
    error = None
    if failure:
        stage, errno, message = failure.decode(errors="replace").split("\0", 2)
        error = {"stage": stage, "errno": int(errno or 0), "message": message}
    record = {
        "exit_code": result["exit_code"],
        "signal": result["signal"],
        "error": error,
        "finished_at": time.time(),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 6),
        "max_rss": usage.ru_maxrss * 1024,
        "oom_kills": _counter(config["oom_files"]),
        "pids_max": _counter(config["pids_files"]),
        "stderr_tail": log.tail,
    }
    for group in config["cgroup_dirs"]:
        try:  # noqa: SIM105
            os.rmdir(group)
        except OSError:
            pass  # the node's cleanup tries again
    temporary = os.path.join(directory, ".exit.json.tmp")
    with open(temporary, "w", encoding="ascii") as out:
        out.write(_encode(record) + "\n")
    os.replace(temporary, os.path.join(directory, "exit.json"))
