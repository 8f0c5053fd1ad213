"""A cgroup per ``process`` execution, where this node can make one: memory, CPU and pids limits,
a reliable list of the execution's processes, and out-of-memory kills counted by the kernel.

Groups are made below the cgroup the node itself is in (so they stay inside whatever limits
the node was given). cgroup v2 is used for each controller it offers and can delegate; the
others are taken from cgroup v1 hierarchies (the "hybrid" layout of many hosts). With neither
writable (a node not run as root, no delegated v2 subtree) executions get rlimits only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, final

__all__ = ["CONTROLLERS", "Cgroup", "CgroupLimits", "CgroupSupport", "detect"]

#: The controllers an execution's limits need.
CONTROLLERS: Final = ("memory", "cpu", "pids")
#: cgroup's CPU bandwidth period (µs): a quota of ``cores × period`` per period.
CPU_PERIOD: Final = 100_000
_PROC: Final = Path("/proc")


@final
@dataclass(frozen=True, slots=True)
class CgroupLimits:
    """What a group enforces; ``None``: no limit of that kind."""

    memory: int | None = None
    cpu_cores: float | None = None
    pids: int | None = None


@final
@dataclass(frozen=True, slots=True)
class _Hierarchy:
    version: Literal[1, 2]
    #: Where this node's groups are made: the node's own cgroup in this hierarchy.
    parent: Path
    controllers: frozenset[str]


@final
@dataclass(frozen=True)
class CgroupSupport:
    """Where this machine lets the node make a group per execution, and with which
    controllers. Found by :func:`detect`."""

    hierarchies: tuple[_Hierarchy, ...]

    @property
    def controllers(self) -> frozenset[str]:
        return frozenset().union(*(h.controllers for h in self.hierarchies))

    def describe(self) -> str:
        parts = []
        for h in self.hierarchies:
            what = ", ".join(c for c in CONTROLLERS if c in h.controllers) or "tracking only"
            parts.append(f"v{h.version} ({what}) in {h.parent}")
        return "; ".join(parts)

    def create(self, name: str) -> Cgroup:
        """Make the group ``name`` in every hierarchy, without limits yet
        (:meth:`Cgroup.set_limits`). A stale empty group of that name (left by a crash) is
        replaced; raises ``OSError``, having removed what it made, if a group cannot be
        made."""
        made: list[tuple[int, Path, frozenset[str]]] = []
        try:
            for h in self.hierarchies:
                path = h.parent / name
                try:
                    path.mkdir()
                except FileExistsError:
                    if _procs(path):
                        raise OSError(errno.EEXIST, "cgroup in use", str(path)) from None
                    path.rmdir()
                    path.mkdir()
                made.append((h.version, path, h.controllers))
        except BaseException:
            Cgroup(tuple(made)).remove()
            raise
        return Cgroup(tuple(made))


@final
@dataclass(frozen=True)
class Cgroup:
    """One execution's group: a directory in each hierarchy, as ``(version, path,
    controllers)``."""

    groups: tuple[tuple[int, Path, frozenset[str]], ...]

    @staticmethod
    def name_for(directory: Path) -> str:
        """A group name unique to an execution's directory (and so to node and allocation)."""
        digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
        return f"dmsnode-{digest}"

    @staticmethod
    def fresh_name() -> str:
        """A group name for an execution not known yet (a spare monitor's): random."""
        return f"dmsnode-{os.urandom(8).hex()}"

    def set_limits(self, limits: CgroupLimits) -> None:
        """Write ``limits`` in every hierarchy (raises ``OSError`` if one cannot be written).
        The execution's first process may be in the group already: it runs nothing of the
        execution's before this is done."""
        for version, path, controllers in self.groups:
            _write_limits(version, path, controllers, limits)

    @property
    def procs_files(self) -> list[str]:
        return [str(path / "cgroup.procs") for _, path, _ in self.groups]

    @property
    def oom_files(self) -> list[tuple[str, str]]:
        """Where the kernel counts out-of-memory kills in this group, as ``(file, key)``."""
        files = []
        for version, path, controllers in self.groups:
            if "memory" in controllers:
                name = "memory.events" if version == 2 else "memory.oom_control"
                files.append((str(path / name), "oom_kill"))
        return files

    @property
    def pids_files(self) -> list[tuple[str, str]]:
        """Where the kernel counts forks refused by ``pids.max``."""
        return [(str(p / "pids.events"), "max") for _, p, c in self.groups if "pids" in c]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for _, path, _ in self.groups:
            found |= _procs(path)
        return found

    def memory_usage(self) -> int | None:
        for version, path, controllers in self.groups:
            if "memory" in controllers:
                name = "memory.current" if version == 2 else "memory.usage_in_bytes"
                with contextlib.suppress(OSError, ValueError):
                    return int((path / name).read_text())
        return None

    def kill(self) -> None:
        """SIGKILL every process in the group (``cgroup.kill`` where the kernel has it)."""
        for version, path, _ in self.groups:
            if version == 2 and (path / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (path / "cgroup.kill").write_text("1")
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)

    def remove(self, *, timeout: float = 2.0) -> list[str]:
        """Kill what is left and remove the group; what could not be removed, and why."""
        problems = []
        deadline = time.monotonic() + timeout
        for _, path, _ in reversed(self.groups):
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        problems.append(f"{path}: {exc.strerror}")
                        break
                    self.kill()
                    time.sleep(0.01)
        return problems

    def to_json(self) -> list[dict[str, Any]]:
        return [{"version": v, "path": str(p), "controllers": sorted(c)} for v, p, c in self.groups]

    @classmethod
    def from_json(cls, data: Any) -> Cgroup:
        return cls(
            tuple(
                (int(g["version"]), Path(g["path"]), frozenset(g["controllers"]))
                for g in data or ()
            )
        )


def _procs(path: Path) -> set[int]:
    try:
        text = (path / "cgroup.procs").read_text()
    except OSError:
        return set()
    return {int(line) for line in text.split()}


def _write_limits(
    version: int, path: Path, controllers: frozenset[str], limits: CgroupLimits
) -> None:
    def put(name: str, value: str, *, optional: bool = False) -> None:
        try:
            (path / name).write_text(value)
        except OSError:
            if not optional:
                raise

    if "memory" in controllers and limits.memory is not None:
        if version == 2:
            put("memory.max", str(limits.memory))
            put("memory.swap.max", "0", optional=True)
        else:
            put("memory.limit_in_bytes", str(limits.memory))
            put("memory.memsw.limit_in_bytes", str(limits.memory), optional=True)
    if "cpu" in controllers and limits.cpu_cores is not None:
        quota = max(1000, round(limits.cpu_cores * CPU_PERIOD))
        if version == 2:
            put("cpu.max", f"{quota} {CPU_PERIOD}")
        else:
            put("cpu.cfs_period_us", str(CPU_PERIOD))
            put("cpu.cfs_quota_us", str(quota))
    if "pids" in controllers and limits.pids is not None:
        put("pids.max", str(limits.pids))


# -- detection ----------------------------------------------------------------------------------


@final
@dataclass(frozen=True, slots=True)
class _Mount:
    root: str
    point: Path
    fstype: str
    options: frozenset[str]


def _mounts(text: str) -> list[_Mount]:
    """The cgroup mounts of ``/proc/self/mountinfo``."""
    mounts = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or not tail[0].startswith("cgroup"):
            continue
        point = fields[4].replace("\\040", " ")
        mounts.append(_Mount(fields[3], Path(point), tail[0], frozenset(tail[2].split(","))))
    return mounts


def _own_paths(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` as ``{controller or "" (v2): path}`` (``name=x`` kept as is)."""
    paths = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _parent(mount: _Mount, own: str) -> Path:
    relative = own
    if mount.root != "/" and (own == mount.root or own.startswith(mount.root + "/")):
        relative = own[len(mount.root) :]
    return mount.point / relative.lstrip("/")


def _probe(parent: Path) -> str | None:
    """Why a group cannot be made below ``parent`` (``None``: it can)."""
    probe = parent / f"dmsnode-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return f"cannot make a cgroup in {parent}: {exc.strerror}"
    return None


def _enable_v2(parent: Path, wanted: list[str]) -> tuple[frozenset[str], list[str]]:
    """Enable ``wanted`` for the children of ``parent``; those enabled, and why not the rest."""
    try:
        offered = set((parent / "cgroup.controllers").read_text().split())
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError as exc:
        return frozenset(), [f"cgroup v2 in {parent}: {exc.strerror}"]
    problems = []
    for controller in wanted:
        if controller in enabled:
            continue
        if controller not in offered:
            continue
        try:
            (parent / "cgroup.subtree_control").write_text(f"+{controller}")
            enabled.add(controller)
        except OSError as exc:
            why = exc.strerror
            if exc.errno == errno.EBUSY:
                why = "the node's own cgroup holds processes (run the node in a delegated cgroup)"
            problems.append(f"cgroup v2 cannot delegate {controller} in {parent}: {why}")
    return frozenset(enabled & set(wanted)), problems


def detect(
    mountinfo: str | None = None, own: str | None = None
) -> tuple[CgroupSupport | None, str]:
    """Where this node can make groups: the support (``None`` if nowhere) and a note saying
    what is missing and why. The arguments stand in for ``/proc/self/{mountinfo,cgroup}``."""
    try:
        if mountinfo is None:
            mountinfo = (_PROC / "self" / "mountinfo").read_text()
        if own is None:
            own = (_PROC / "self" / "cgroup").read_text()
    except OSError as exc:
        return None, f"cannot read this process's cgroups: {exc.strerror}"
    mounts, paths = _mounts(mountinfo), _own_paths(own)
    hierarchies: list[_Hierarchy] = []
    problems: list[str] = []
    wanted = list(CONTROLLERS)
    v2 = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if v2 is not None and "" in paths:
        parent = _parent(v2, paths[""])
        problem = _probe(parent)
        if problem is None:
            enabled, why = _enable_v2(parent, wanted)
            problems += why
            hierarchies.append(_Hierarchy(2, parent, enabled))
            wanted = [c for c in wanted if c not in enabled]
        else:
            problems.append(problem)
    for controller in list(wanted):
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        if mount is None or controller not in paths:
            continue
        if controller not in wanted:
            continue  # co-mounted with one taken already
        parent = _parent(mount, paths[controller])
        problem = _probe(parent)
        if problem is not None:
            problems.append(problem)
            continue
        together = frozenset(c for c in wanted if c in mount.options)
        hierarchies.append(_Hierarchy(1, parent, together))
        wanted = [c for c in wanted if c not in together]
    missing = [c for c in CONTROLLERS if c in wanted]
    if missing:
        problems.insert(0, f"no cgroup {', '.join(missing)} controller this node can use")
    if not hierarchies:
        return None, "; ".join(problems) or "no cgroup hierarchy mounted"
    return CgroupSupport(tuple(hierarchies)), "; ".join(problems)
