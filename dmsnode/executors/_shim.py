"""The monitor of one ``process`` execution: runs it, logs its output, records how it ended.

:class:`~dmsnode.executors.ProcessExecutor` starts it (``python -I -S``, this module imported
from its directory, :func:`run` called with its arguments) in a session of its own, so that it
outlives a restart of the node. It is started before its execution is known: a *spare*, made
while the node has nothing for it (most are forked by the spare maker, :func:`_serve`, rather
than started afresh). It forks the execution's first process at once, which joins the cgroups
named on the command line (moving a process into a cgroup waits for an RCU grace period: 10 to
25 ms, paid here, before the execution exists) and waits.

The node then hands it an execution: it writes ``DIR/shim.cfg`` (marshal), sends the first
process that configuration on :data:`_GO` (it takes its rlimits and user, and execs the sandbox
or the command) and the monitor the directory DIR on :data:`_NODE`. The monitor writes the
first process's stdout and stderr to ``DIR/log.jsonl`` as timestamped JSON lines (``{"t": unix
time, "s": "o" or "e", "l": text}``), and once it exits kills what it left behind, writes
``DIR/exit.json`` and says "done" on :data:`_NODE`. A node that has since restarted learns the
outcome from that file. If :data:`_NODE` ends without a directory (the node no longer wants the
spare, or died), the monitor ends its first process, removes the cgroups and exits.

Standard library only, and only modules that load in microseconds (no ``json``, ``re``,
``signal``, ``subprocess`` or ``typing``): a monitor is made for every execution.
"""

from __future__ import annotations

import _json
import _signal  # type: ignore[import-not-found]  # signal's C half, without enum
import errno
import marshal
import os
import resource
import select
import sys
import time

TYPE_CHECKING = False  # typing costs 10 ms to import: only for the type checker
if TYPE_CHECKING:
    from typing import Any

_CHUNK = 65536
#: A line longer than this is logged in pieces.
_MAX_LINE = 65536
#: How long to wait for the output pipes to close once everything is dead.
_DRAIN = 2.0
#: How long to go on killing what the execution left (it may go on forking).
_KILL_FOR = 1.0
#: How long what the first process left may keep its output open before it is killed (a
#: sandbox's init outlives its launcher by a millisecond or so).
_SETTLE = 0.01
#: How many of the last stderr lines ``exit.json`` keeps (to tell why a sandbox failed).
_TAIL = 20
#: The node's socket: the monitor's execution (its directory) comes on it, and "done" goes back
#: once ``exit.json`` is written; its end tells the monitor that the node is gone.
_NODE = 0
#: The pipe on which the node sends the execution's first process its configuration; its end
#: without one tells that process that it will have no execution.
_GO = 3
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
#: The first argument: whether the monitor is a subreaper (keeps orphans below it), which it
#: becomes before it is handed an execution (``ctypes`` takes milliseconds to load).
SUBREAPER = "subreaper"
PLAIN = "plain"
#: The argument that makes this the spare maker instead.
MAKER = "maker"
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


_libc: Any = None


def _prctl(option: int, value: int) -> None:
    global _libc
    import ctypes  # 4 ms the first time: only in the modes that need it

    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.prctl(option, value, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _read_all(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, _CHUNK):
        data += chunk
    return data


def _exec(argv: list[str], env: dict[str, str]) -> None:
    """``execvpe``, searching ``env``'s PATH, without ``os.execvpe``: it imports ``warnings``,
    which the execution's user may not be allowed to read."""
    program = argv[0]
    if "/" in program:
        os.execve(program, argv, env)
    error: OSError | None = None
    for directory in env.get("PATH", os.defpath).split(":"):
        try:
            os.execve(os.path.join(directory or ".", program), argv, env)
        except OSError as exc:  # the first error that says more than "not here" wins
            if error is None or (
                error.errno in (errno.ENOENT, errno.ENOTDIR)
                and exc.errno not in (errno.ENOENT, errno.ENOTDIR)
            ):
                error = exc
    raise error or OSError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def _child(cgroup_procs: list[str], out_w: int, err_w: int, status_w: int) -> None:
    """In the forked child: join the cgroups, wait for the execution's configuration on
    :data:`_GO` (none: the spare was not used, exit), become the execution's first process and
    exec. Never returns; a failure is written to ``status_w`` as ``stage NUL errno NUL
    message``."""
    stage = "setup"
    failure: BaseException | None = None
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)  # not the node's socket: the node sees the monitor's end alone
        os.close(null)
        os.setsid()
        stage = "cgroup"
        me = str(os.getpid()).encode()
        for path in cgroup_procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, me)
            finally:
                os.close(fd)
    except BaseException as exc:  # reported once there is an execution to report it for
        failure = exc
    try:
        raw = _read_all(_GO)
        os.close(_GO)
    except BaseException:
        os._exit(1)
    if not raw:
        os._exit(0)  # no execution for this spare
    try:
        if failure is not None:
            raise failure
        stage = "setup"
        config: dict[str, Any] = marshal.loads(raw)
        for signum in _RESET:
            _signal.signal(signum, _signal.SIG_DFL)
        os.umask(0o022)
        stage = "stdio"
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
        _exec(config["argv"], config["env"])
    except BaseException as exc:
        code = getattr(exc, "errno", None) or 0
        message = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        os.write(status_w, f"{stage}\0{code}\0{message}".encode(errors="replace"))
    finally:
        os._exit(127)


def _children_of(pid: int) -> list[int] | None:
    """The children of ``pid``, from the kernel's lists of each of its threads' children
    (``None``: this kernel has none; ``[]`` also if it is gone). Reading them is not atomic,
    but a process cannot leave its parent's list but for this monitor's (orphans come here),
    and this monitor reaps between looks: a look that finds nothing below it is right."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as file:
                found.extend(int(word) for word in file.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{thread}"):
                continue  # the thread ended
            return None  # no CONFIG_PROC_CHILDREN
        except OSError:
            continue
    return found


def _below(pid: int) -> set[int]:
    """Every process below ``pid``: from the children lists (milliseconds faster than looking
    at every process of the machine), else from every process's parent."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        children = _children_of(todo.pop())
        if children is None:
            return _below_by_scan(pid)
        for child in children:
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _below_by_scan(pid: int) -> set[int]:
    children = _children_map()
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


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
        found |= _below(os.getpid())
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
    """SIGKILL what the execution's first process left behind, until nothing is left (for
    :data:`_KILL_FOR` seconds at most). Often what is left is already dying (a sandbox's init
    outlives its launcher by a millisecond): the pauses start short."""
    deadline = time.monotonic() + _KILL_FOR
    pause = 0.0005
    while True:
        left = _leftovers(cgroup_procs, below)
        if not left or time.monotonic() > deadline:
            return
        for signum in (_signal.SIGSTOP, _signal.SIGKILL):  # stopped, it cannot fork
            for pid in left:
                try:  # noqa: SIM105 (contextlib costs milliseconds to import)
                    os.kill(pid, signum)
                except OSError:
                    pass
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
        reap()


def run(argv: list[str]) -> None:
    """Be a monitor: ``argv`` is :data:`SUBREAPER` or :data:`PLAIN`, then the ``cgroup.procs``
    files the execution's first process joins. Wait for an execution, monitor it to its end,
    then exit (without the interpreter's teardown: nothing is left to flush). ``argv`` =
    [:data:`MAKER`]: be the spare maker (:func:`_serve`)."""
    try:
        if argv == [MAKER]:
            _serve()
        else:
            _monitor(argv[0] == SUBREAPER, argv[1:])
    except BaseException:
        import traceback

        traceback.print_exc()  # into shim.log (before an execution: nowhere)
        sys.stderr.flush()
        os._exit(1)
    os._exit(0)


def _serve() -> None:
    """Make spare monitors by forking this interpreter (which costs a millisecond where
    starting one costs ten or more), for as long as the node's socket (stdin) is open.

    Each request is a message, the monitor's arguments (marshal), with two file descriptors:
    the spare's :data:`_NODE` and :data:`_GO`. The answer is the spare's pid. Each spare is in
    a session of its own; the kernel reaps them (the node watches them by pidfd, as it watches
    monitors found after a restart)."""
    import _socket  # socket's C half (socket takes 30 ms)

    os.closerange(3, 1 << 16)  # whatever the node had open stays with the node
    os.dup2(0, 100)  # out of the way of the descriptors spares are given
    channel = _socket.socket(fileno=100)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for signum in (_signal.SIGINT, _signal.SIGHUP, _signal.SIGTERM):
        _signal.signal(signum, _signal.SIG_IGN)
    _signal.signal(_signal.SIGCHLD, _signal.SIG_IGN)  # no zombies: nothing here waits
    room = _socket.CMSG_SPACE(4 * 4)
    while True:
        message, ancillary, _, _ = channel.recvmsg(1 << 16, room)
        fds = [
            int.from_bytes(data[i : i + 4], sys.byteorder)
            for level, kind, data in ancillary
            if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
            for i in range(0, len(data) - 3, 4)
        ]
        if not message or len(fds) != 2:  # the node is gone (or confused): stop
            break
        pid = os.fork()
        if pid == 0:
            try:
                channel.detach()  # closed with the rest by the monitor
                os.setsid()
                _signal.signal(_signal.SIGCHLD, _signal.SIG_DFL)
                os.dup2(fds[0], _NODE)
                os.dup2(fds[1], _GO)
                argv = marshal.loads(message)
            except BaseException:
                os._exit(1)
            run(argv)  # which closes the originals
        for fd in fds:
            os.close(fd)
        channel.send(str(pid).encode())


def _order() -> str | None:
    """The directory of the execution this monitor is for, from the node's socket; ``None``
    if it ends first."""
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = os.read(_NODE, 4096)
        except InterruptedError:
            continue
        if not chunk:
            return None
        data += chunk
    return os.fsdecode(data[:-1])


def _reap_all() -> None:
    """Collect the children that have ended."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def _remove_groups(cgroup_procs: list[str]) -> None:
    """Remove the (empty) cgroups of an execution that never was."""
    for path in cgroup_procs:
        group = os.path.dirname(path)
        for _ in range(100):
            try:
                os.rmdir(group)
            except OSError as exc:
                if exc.errno == errno.EBUSY:  # its last process is still leaving
                    time.sleep(0.01)
                    continue
            break


def _monitor(subreaper: bool, cgroup_procs: list[str]) -> None:
    os.umask(0o077)  # logs and status are the node's, not the execution's
    os.closerange(_GO + 1, 1 << 16)  # whatever the node had open stays with the node
    for signum in (_signal.SIGINT, _signal.SIGHUP, _signal.SIGTERM):
        _signal.signal(signum, _signal.SIG_IGN)  # the node stops executions, not this
    if subreaper:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # orphans stay below, to be found and reaped
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(cgroup_procs, out_w, err_w, status_w)
    for fd in (out_w, err_w, status_w, _GO):
        os.close(fd)

    directory = _order()
    if directory is None:  # not wanted (or the node is gone): end what was made for it
        _kill_leftovers(cgroup_procs, True, _reap_all)  # the first process, all below it
        _reap_all()
        _remove_groups(cgroup_procs)
        return
    own_log = os.open(
        os.path.join(directory, "shim.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
    )
    os.dup2(own_log, 2)
    os.close(own_log)
    with open(os.path.join(directory, "shim.cfg"), "rb") as file:
        config: dict[str, Any] = marshal.load(file)
    if config["subreaper"] and not subreaper:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    log = _Log(os.path.join(directory, "log.jsonl"))
    failure = _read_all(status_r)  # until the first process execs (or fails to)
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
    ended: float | None = None  # when the first process ended
    deadline: float | None = None  # set once what it left is killed
    while True:
        if ended is None:
            timeout = 1000 if pidfd is not None else 100  # also reaps adopted orphans
        elif deadline is None:
            # What holds the output open is what is left: often a sandbox's init, exiting.
            # Its end closes the pipes; wait for that (briefly) rather than poll for it.
            settle = ended + _SETTLE - time.monotonic()
            if not streams or settle <= 0:
                _kill_leftovers(config["cgroup_procs"], config["subreaper"], reap)
                deadline = time.monotonic() + _DRAIN
                continue
            timeout = max(1, int(settle * 1000))
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
        if ended is None:
            reap()
            if result["rusage"] is not None:
                ended = time.monotonic()
    log.flush_partial()
    log.file.close()

    usage = result["rusage"]
    error = None
    if failure:
        stage, code, message = failure.decode(errors="replace").split("\0", 2)
        error = {"stage": stage, "errno": int(code or 0), "message": message}
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
    temporary = os.path.join(directory, ".exit.json.tmp")
    with open(temporary, "w", encoding="ascii") as out:
        out.write(_encode(record) + "\n")
    os.replace(temporary, os.path.join(directory, "exit.json"))
    try:  # noqa: SIM105
        os.write(_NODE, b"done\n")  # the node need not wait for this process to exit
    except OSError:
        pass  # it is gone (it will find exit.json)
    for group in config["cgroup_dirs"]:
        try:  # noqa: SIM105
            os.rmdir(group)
        except OSError:
            pass  # the node's cleanup tries again
