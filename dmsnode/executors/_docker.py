"""The ``docker`` executor: each execution is a container of the allocation's image.

The allocation's resources become the container's limits (NanoCpus, memory with no swap on
top, pids, ulimits, GPU device requests). Every container carries labels naming the node,
the ensemble and the allocation (``nunet.*``): after a restart :meth:`DockerExecutor.recover`
finds this node's containers by them and re-attaches instead of killing them. Output stays
with the container (json-file logs) until :meth:`DockerExecution.cleanup` removes it.

aiodocker is an asyncio library; it is reached only through :mod:`._docker_bridge`, which
runs it on a trio-asyncio loop owned by the executor (docs/executors.md, "docker").
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import re
import secrets
import signal
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final, final

import trio

from ..errors import ExecutionRefused, ExecutorError, ExecutorUnavailable, ImageUnavailable
from ..resources import Gpu, Resources, format_bytes
from ._docker_bridge import DockerApiError, DockerBridge, Stream
from ._interface import (
    Availability,
    CommandResult,
    Execution,
    ExecutionSpec,
    ExecutionStatus,
    Executor,
    LogLine,
    PortMapping,
    State,
    Stats,
)

__all__ = [
    "LABEL_ALLOCATION",
    "LABEL_ENSEMBLE",
    "LABEL_NODE",
    "PORTS_NETWORK",
    "DockerExecution",
    "DockerExecutor",
    "container_config",
    "device_requests",
    "spec_from_inspect",
    "stats_from_sample",
    "status_from_inspect",
]

log = logging.getLogger("dmsnode.executors.docker")

LABEL_NODE: Final = "nunet.node"
LABEL_ENSEMBLE: Final = "nunet.ensemble"
LABEL_ALLOCATION: Final = "nunet.allocation"
#: The bridge network for containers that publish ports, used only on a daemon that has no
#: default ``bridge`` network (``dockerd --bridge=none``); created on first need.
PORTS_NETWORK: Final = "dmsnode"
#: How long ``availability()`` waits for the daemon to answer.
AVAILABILITY_TIMEOUT: Final = 5.0
#: How long pulling an image may take.
PULL_TIMEOUT: Final = 600.0
#: How long creating or removing a container may take while shielded from cancellation.
_SHIELDED_TIMEOUT: Final = 30.0
#: The longest pause between two attempts to watch a container the daemon did not answer for.
_WATCH_BACKOFF: Final = 10.0
#: Docker's "no time" (a container that never started or never finished).
_NO_TIME: Final = "0001-01-01T00:00:00Z"
#: The limits (``ExecutionSpec.limits``) a container can enforce, as ulimits where they are.
_ULIMITS: Final = {"open_files": "nofile", "cpu_seconds": "cpu"}
_LIMITS: Final = frozenset({"pids", *_ULIMITS})
#: Where the daemon's logs for a container are kept (readable through the API) and how much.
_LOG_CONFIG: Final = {"Type": "json-file", "Config": {"max-size": "32m", "max-file": "2"}}
_RUNNING: Final = frozenset({"running", "paused", "restarting", "removing"})


# -- spec -> container ------------------------------------------------------------------------


def container_config(
    spec: ExecutionSpec, *, node_id: str, network: str | None = None
) -> dict[str, Any]:
    """The ``containers/create`` body for ``spec`` on node ``node_id``.

    Raises :class:`ExecutionRefused` for a limit no container can enforce.
    """
    unknown = sorted(set(spec.limits) - _LIMITS)
    if unknown:
        raise ExecutionRefused(
            f"allocation {spec.allocation_id}: the docker executor cannot enforce the limit(s) "
            f"{', '.join(unknown)} (it knows {', '.join(sorted(_LIMITS))})"
        )
    resources = spec.resources
    host: dict[str, Any] = {
        "Privileged": spec.privileged,
        "RestartPolicy": {"Name": "no"},
        "LogConfig": _LOG_CONFIG,
    }
    if resources.cpu_cores > 0:
        host["NanoCpus"] = max(1, round(resources.cpu_cores * 1e9))
    if resources.ram > 0:
        host["Memory"] = resources.ram
        host["MemorySwap"] = resources.ram  # no swap on top of the allocation's RAM
    if "pids" in spec.limits:
        host["PidsLimit"] = spec.limits["pids"]
    ulimits = [
        {"Name": name, "Soft": spec.limits[key], "Hard": spec.limits[key]}
        for key, name in _ULIMITS.items()
        if key in spec.limits
    ]
    if ulimits:
        host["Ulimits"] = ulimits
    if resources.gpus:
        host["DeviceRequests"] = device_requests(resources.gpus)
    exposed: dict[str, dict[str, Any]] = {}
    if spec.ports:
        bindings: dict[str, list[dict[str, str]]] = {}
        for port in spec.ports:
            key = f"{port.container_port}/{port.protocol}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": "", "HostPort": str(port.host_port)})
        host["PortBindings"] = bindings
    if network:
        host["NetworkMode"] = network
    config: dict[str, Any] = {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in spec.env.items()],
        "Labels": {
            **spec.labels,
            LABEL_NODE: node_id,
            LABEL_ENSEMBLE: spec.ensemble_id,
            LABEL_ALLOCATION: spec.allocation_id,
        },
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "HostConfig": host,
    }
    if spec.command:
        config["Cmd"] = list(spec.command)
    if spec.entrypoint is not None:
        # An empty list would mean "the image's"; [""] is Docker's way to say "none".
        config["Entrypoint"] = list(spec.entrypoint) or [""]
    if spec.working_dir:
        config["WorkingDir"] = spec.working_dir
    if spec.user:
        config["User"] = spec.user
    if exposed:
        config["ExposedPorts"] = exposed
    return config


def device_requests(gpus: Sequence[Gpu]) -> list[dict[str, Any]]:
    """One device request per vendor, naming the allocation's devices by their index.

    NVIDIA through its container toolkit (driver ``nvidia``); AMD and Intel through CDI
    (driver ``cdi``, device names ``amd.com/gpu=<index>`` and ``intel.com/gpu=<index>``),
    which needs Docker 25 or newer with CDI enabled and the vendor's CDI specification.
    """
    requests: list[dict[str, Any]] = []
    for vendor in ("nvidia", "amd", "intel"):
        indexes = sorted(g.index for g in gpus if g.vendor == vendor)
        if not indexes:
            continue
        if vendor == "nvidia":
            requests.append(
                {
                    "Driver": "nvidia",
                    "Count": 0,
                    "DeviceIDs": [str(i) for i in indexes],
                    "Capabilities": [["gpu"]],
                    "Options": {},
                }
            )
        else:
            requests.append(
                {
                    "Driver": "cdi",
                    "Count": 0,
                    "DeviceIDs": [f"{vendor}.com/gpu={i}" for i in indexes],
                    "Capabilities": [],
                    "Options": {},
                }
            )
    return requests


def container_name(allocation_id: str) -> str:
    """A fresh, valid container name that says which allocation it runs."""
    slug = re.sub(r"[^a-zA-Z0-9_.-]+", "-", allocation_id).strip("-._")[:48]
    return f"nunet-{slug or 'allocation'}-{secrets.token_hex(4)}"


# -- container -> spec, status, stats ------------------------------------------------------


def spec_from_inspect(info: Mapping[str, Any]) -> ExecutionSpec:
    """The spec a container was made from, as far as its inspect document tells (GPUs by
    vendor and index only; the environment includes the image's)."""
    config = info.get("Config") or {}
    host = info.get("HostConfig") or {}
    labels = dict(config.get("Labels") or {})
    limits: dict[str, int] = {}
    if host.get("PidsLimit"):
        limits["pids"] = int(host["PidsLimit"])
    names = {name: key for key, name in _ULIMITS.items()}
    for ulimit in host.get("Ulimits") or ():
        if ulimit.get("Name") in names:
            limits[names[ulimit["Name"]]] = int(ulimit.get("Hard", ulimit.get("Soft", 0)))
    ports: list[PortMapping] = []
    for key, bindings in (host.get("PortBindings") or {}).items():
        number, _, protocol = key.partition("/")
        for binding in bindings or ():
            if binding.get("HostPort"):
                ports.append(
                    PortMapping(
                        int(binding["HostPort"]), int(number), "udp" if protocol == "udp" else "tcp"
                    )
                )
    entrypoint = config.get("Entrypoint")
    return ExecutionSpec(
        allocation_id=labels.get(LABEL_ALLOCATION, ""),
        ensemble_id=labels.get(LABEL_ENSEMBLE, ""),
        image=str(config.get("Image", "")),
        command=tuple(config.get("Cmd") or ()),
        entrypoint=None if entrypoint is None else tuple(e for e in entrypoint if e),
        env=dict(e.partition("=")[::2] for e in config.get("Env") or ()),
        working_dir=str(config.get("WorkingDir") or ""),
        user=str(config.get("User") or ""),
        resources=Resources(
            cpu_cores=(host.get("NanoCpus") or 0) / 1e9,
            ram=int(host.get("Memory") or 0),
            gpus=_gpus_from_requests(host.get("DeviceRequests") or ()),
        ),
        limits=limits,
        ports=tuple(ports),
        privileged=bool(host.get("Privileged")),
        labels={
            k: v
            for k, v in labels.items()
            if k not in (LABEL_NODE, LABEL_ENSEMBLE, LABEL_ALLOCATION)
        },
    )


def _gpus_from_requests(requests: Sequence[Mapping[str, Any]]) -> tuple[Gpu, ...]:
    gpus: list[Gpu] = []
    for request in requests:
        for device in request.get("DeviceIDs") or ():
            vendor, _, index = str(device).rpartition("=")
            if request.get("Driver") == "nvidia" and device.isdigit():
                gpus.append(Gpu("nvidia", int(device), "", 0))
            elif vendor in ("amd.com/gpu", "intel.com/gpu") and index.isdigit():
                gpus.append(Gpu("amd" if vendor.startswith("amd") else "intel", int(index), "", 0))
    return tuple(gpus)


def status_from_inspect(
    info: Mapping[str, Any], *, stopped: bool = False, killed_after: float | None = None
) -> ExecutionStatus:
    """An execution's status from its container's inspect document.

    ``stopped``: the node asked it to stop while it ran; ``killed_after``: and killed it once
    that many seconds of grace had passed.
    """
    state = info.get("State") or {}
    started = parse_time(state.get("StartedAt"))
    finished = parse_time(state.get("FinishedAt"))
    if started is not None and finished is not None and finished < started:
        started = finished  # Docker stamps a very short run's start after its end
    status = state.get("Status", "")
    if status in _RUNNING:
        return ExecutionStatus(State.RUNNING, started_at=started)
    if status == "created":
        return ExecutionStatus(
            State.FAILED,
            reason="created but never started (the node stopped while starting it)",
        )
    code = state.get("ExitCode")
    code = int(code) if code is not None else None
    if stopped:
        reason = "stopped on request"
        if killed_after is not None:
            reason += f" (killed after {killed_after:g} s of grace)"
        return ExecutionStatus(State.STOPPED, code, reason, started, finished)
    limit = int((info.get("HostConfig") or {}).get("Memory") or 0)
    out_of_memory = "out of memory" + (f" (limit {format_bytes(limit)})" if limit else "")
    if state.get("Error"):
        return ExecutionStatus(
            State.FAILED, code, f"could not run: {state['Error']}", started, finished
        )
    if code == 0:
        reason = f"a process was killed: {out_of_memory}" if state.get("OOMKilled") else ""
        return ExecutionStatus(State.COMPLETED, 0, reason, started, finished)
    if state.get("OOMKilled"):
        return ExecutionStatus(State.FAILED, code, f"killed: {out_of_memory}", started, finished)
    return ExecutionStatus(State.FAILED, code, _exit_reason(code), started, finished)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "exited with an unknown code"
    if code > 128:
        with contextlib.suppress(ValueError):
            return f"exited with code {code} ({signal.Signals(code - 128).name})"
    return f"exited with code {code}"


def stats_from_sample(sample: Mapping[str, Any]) -> Stats:
    """Stats from one sample of the stats API (cgroup v1 or v2); ``None`` where it says
    nothing (a container that is not running)."""
    if not sample or sample.get("read", _NO_TIME) == _NO_TIME:
        return Stats()
    cpu = sample.get("cpu_stats") or {}
    before = sample.get("precpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    cpu_percent = None
    previous = (before.get("cpu_usage") or {}).get("total_usage")
    if total is not None and previous is not None and before.get("system_cpu_usage"):
        system = cpu.get("system_cpu_usage", 0) - before["system_cpu_usage"]
        online = (
            cpu.get("online_cpus")
            or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or ())
            or 1
        )
        if system > 0:
            cpu_percent = (total - previous) / system * online * 100.0
    memory_stats = sample.get("memory_stats") or {}
    usage = memory_stats.get("usage")
    detail = memory_stats.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    networks = sample.get("networks")
    return Stats(
        cpu_seconds=total / 1e9 if total is not None else None,
        cpu_percent=cpu_percent,
        memory=max(0, usage - inactive) if usage is not None else None,
        memory_limit=memory_stats.get("limit"),
        pids=(sample.get("pids_stats") or {}).get("current"),
        network_rx=sum(n.get("rx_bytes", 0) for n in networks.values()) if networks else None,
        network_tx=sum(n.get("tx_bytes", 0) for n in networks.values()) if networks else None,
    )


def parse_time(text: str | None) -> float | None:
    """Docker's RFC 3339 time (nanoseconds, UTC) as Unix time; ``None`` for its "no time"."""
    if not text or text.startswith("0001-01-01"):
        return None
    match = re.fullmatch(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z", text)
    if match is None:
        raise ValueError(f"not a Docker timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    whole = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    return whole + float(f"0.{match.group(7) or 0}")


def log_line(stream: Stream, chunk: str) -> LogLine:
    """A timestamped chunk of the logs API as a :class:`LogLine` (text without the stamp)."""
    stamp, _, text = chunk.partition(" ")
    try:
        when = parse_time(stamp)
    except ValueError:
        when, text = None, chunk
    return LogLine(stream, when if when is not None else time.time(), text)


def _since(since: float | None) -> str | None:
    """``since`` for the logs API: a microsecond early, as a float cannot hold nanoseconds
    (the exact cut is made on our side, on the same parsed times)."""
    return None if since is None else f"{max(since - 1e-6, 0.0):.9f}"


# -- executions -------------------------------------------------------------------------------


@final
class DockerExecution(Execution):
    """One container started (or found again) by a :class:`DockerExecutor`."""

    def __init__(
        self,
        executor: DockerExecutor,
        container_id: str,
        spec: ExecutionSpec,
        status: ExecutionStatus,
    ) -> None:
        self.id = container_id
        self.spec = spec
        self._executor = executor
        self._status = status
        self._finished = trio.Event()
        self._signalled = False
        self._stopping = False
        self._killed_after: float | None = None
        self._removed = False
        if status.state.finished:
            self._finished.set()

    def __repr__(self) -> str:
        return (
            f"<DockerExecution {self.id[:12]} {self.spec.allocation_id} {self._status.state.value}>"
        )

    def status(self) -> ExecutionStatus:
        return self._status

    async def wait(self) -> ExecutionStatus:
        await self._executor._until(self._finished)
        return self._status

    async def stop(self, grace: float = 10.0) -> ExecutionStatus:
        """Docker's stop: the image's stop signal (SIGTERM unless it says otherwise), then
        SIGKILL after ``grace`` seconds. Cancelled, or the executor closing meanwhile, it
        kills at once."""
        if self._finished.is_set():
            return self._status
        self._stopping = True
        try:
            await self._signal(await self._stop_signal())
            with trio.move_on_after(grace):
                await self._executor._until(self._finished)
            if not self._finished.is_set():
                self._killed_after = grace
                await self._signal("SIGKILL")
                await self._executor._until(self._finished)
        except trio.Cancelled:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(_SHIELDED_TIMEOUT),
                contextlib.suppress(ExecutorError),
            ):
                await self._signal("SIGKILL")
            raise
        return self._status

    async def _stop_signal(self) -> str:
        try:
            info = await self._executor._bridge_or_raise().inspect(self.id)
        except DockerApiError as exc:
            raise self._executor._error(f"cannot stop container {self.id[:12]}", exc) from None
        return str((info.get("Config") or {}).get("StopSignal") or "SIGTERM")

    async def _signal(self, name: str) -> None:
        try:
            await self._executor._bridge_or_raise().kill(self.id, name)
        except DockerApiError as exc:
            if exc.status in (404, 409):  # gone, or no longer running: the watcher will see
                return
            raise self._executor._error(f"cannot signal container {self.id[:12]}", exc) from None
        self._signalled = True

    async def logs(
        self, *, follow: bool = False, since: float | None = None
    ) -> AsyncIterator[LogLine]:
        """Both streams, in the order they were written; ``follow``: then what comes, until
        the container stops."""
        if self._removed:
            raise ExecutorError(f"container {self.id[:12]} was cleaned up: its logs are gone")
        bridge = self._executor._bridge_or_raise()
        try:
            if follow:
                async with contextlib.aclosing(bridge.follow_logs(self.id, _since(since))) as items:
                    async for stream, chunk in items:
                        line = log_line(stream, chunk)
                        if since is None or line.time >= since:
                            yield line
                return
            chunks = await bridge.logs(self.id, _since(since))
        except DockerApiError as exc:
            raise self._executor._error(
                f"cannot read the logs of container {self.id[:12]}", exc
            ) from None
        for stream, chunk in chunks:
            line = log_line(stream, chunk)
            if since is None or line.time >= since:
                yield line

    async def stats(self) -> Stats:
        try:
            sample = await self._executor._bridge_or_raise().stats(self.id)
        except DockerApiError as exc:
            raise self._executor._error(
                f"cannot read the stats of container {self.id[:12]}", exc
            ) from None
        return stats_from_sample(sample)

    async def run_command(self, argv: Sequence[str]) -> CommandResult:
        """``docker exec`` of ``argv`` in the running container."""
        if not argv:
            raise ExecutionRefused("a command to run in a container needs at least a program")
        try:
            code, output = await self._executor._bridge_or_raise().exec_run(self.id, argv)
        except DockerApiError as exc:
            raise self._executor._error(
                f"cannot run {argv[0]!r} in container {self.id[:12]}", exc
            ) from None
        return CommandResult(code, output)

    async def cleanup(self) -> None:
        """Remove the container (and with it its logs)."""
        if not self._finished.is_set():
            raise ExecutorError(
                f"container {self.id[:12]} of allocation {self.spec.allocation_id} is still "
                "running: stop it before cleaning up"
            )
        if self._removed:
            return
        try:
            await self._executor._bridge_or_raise().remove(self.id, force=True)
        except DockerApiError as exc:
            if exc.status != 404:
                raise self._executor._error(
                    f"cannot remove container {self.id[:12]}", exc
                ) from None
        self._removed = True
        self._executor._forget(self)

    def _finish(self, info: Mapping[str, Any]) -> None:
        if self._finished.is_set():
            return
        self._status = status_from_inspect(
            info, stopped=self._signalled, killed_after=self._killed_after
        )
        self._finished.set()

    def _vanish(self) -> None:
        if self._finished.is_set():
            return
        self._status = ExecutionStatus(
            State.FAILED,
            reason="the container was removed outside the node",
            started_at=self._status.started_at,
            finished_at=time.time(),
        )
        self._finished.set()


# -- the executor ----------------------------------------------------------------------------


@final
class DockerExecutor(Executor):
    """Runs executions as Docker containers of this node (``node_id`` goes into their labels).

    Privileged containers are refused unless ``allow_privileged``. ``docker_url`` is the
    daemon (``unix:///var/run/docker.sock``, ``tcp://host:2375``); by default ``DOCKER_HOST``
    or the usual socket. A daemon that is missing or does not answer is not an error here:
    :meth:`availability` says why, and :meth:`start` raises :class:`ExecutorUnavailable`.
    """

    name = "docker"

    def __init__(
        self, *, node_id: str, allow_privileged: bool = False, docker_url: str | None = None
    ) -> None:
        if not node_id:
            raise ValueError("node_id must name the node")
        self._node_id = node_id
        self._allow_privileged = allow_privileged
        self._docker_url = docker_url
        self._stack = contextlib.AsyncExitStack()
        self._bridge: DockerBridge | None = None
        self._nursery: trio.Nursery | None = None
        self._closed = trio.Event()
        self._waiters: set[trio.CancelScope] = set()
        self._executions: dict[str, DockerExecution] = {}
        self._network_lock = trio.Lock()
        self._ports_network: str | None = None

    @property
    def node_id(self) -> str:
        return self._node_id

    async def __aenter__(self) -> DockerExecutor:
        if self._bridge is not None or self._closed.is_set():
            raise RuntimeError("a DockerExecutor is entered once")
        try:
            self._bridge = await self._stack.enter_async_context(DockerBridge(self._docker_url))
            self._nursery = await self._stack.enter_async_context(trio.open_nursery())
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Stop watching; the containers keep running (see :meth:`recover`), except those
        being stopped: they are killed, as their stop cannot wait any more."""
        self._closed.set()
        for waiter in self._waiters:
            waiter.cancel()
        stopping = [
            e for e in self._executions.values() if e._stopping and not e._finished.is_set()
        ]
        if stopping and self._bridge is not None:
            with trio.CancelScope(shield=True), trio.move_on_after(_SHIELDED_TIMEOUT):
                for execution in stopping:
                    with contextlib.suppress(DockerApiError):
                        await self._bridge.kill(execution.id, "SIGKILL")
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
        try:
            await self._stack.aclose()
        finally:
            self._bridge = None
            self._nursery = None

    async def availability(self) -> Availability:
        """Whether a Docker daemon answers (within :data:`AVAILABILITY_TIMEOUT`)."""
        if self._bridge is not None:
            return await self._probe(self._bridge)
        async with DockerBridge(self._docker_url) as bridge:
            return await self._probe(bridge)

    async def _probe(self, bridge: DockerBridge) -> Availability:
        try:
            with trio.fail_after(AVAILABILITY_TIMEOUT):
                version = await bridge.version()
        except DockerApiError as exc:
            return Availability(False, f"no Docker daemon: {exc.message}", {"url": bridge.url})
        except trio.TooSlowError:
            return Availability(
                False,
                f"no Docker daemon: {bridge.url} did not answer within {AVAILABILITY_TIMEOUT:g} s",
                {"url": bridge.url},
            )
        return Availability(
            True,
            details={
                "url": bridge.url,
                "version": str(version.get("Version", "")),
                "api_version": str(version.get("ApiVersion", "")),
                "os": str(version.get("Os", "")),
                "arch": str(version.get("Arch", "")),
            },
        )

    async def start(self, spec: ExecutionSpec) -> DockerExecution:
        """Create and start the container; once this returns it runs (or already ran)."""
        bridge = self._bridge_or_raise()
        if spec.privileged and not self._allow_privileged:
            raise ExecutionRefused(
                f"allocation {spec.allocation_id} asks for a privileged container, and this "
                "node does not allow privileged containers"
            )
        if not spec.image:
            raise ExecutionRefused(
                f"allocation {spec.allocation_id}: the docker executor needs an image"
            )
        try:
            await self._ensure_image(bridge, spec.image)
            network = await self._network_for(bridge, spec)
        except DockerApiError as exc:
            raise self._error(f"cannot start allocation {spec.allocation_id}", exc) from None
        config = container_config(spec, node_id=self._node_id, network=network)
        name = container_name(spec.allocation_id)
        started = False
        try:
            # A container created while its creator is cancelled would escape: create it
            # shielded, then let cancellation through (and remove it below).
            with trio.CancelScope(shield=True):
                with trio.fail_after(_SHIELDED_TIMEOUT):
                    container_id = await bridge.create_container(config, name)
            await trio.lowlevel.checkpoint_if_cancelled()
            await bridge.start_container(container_id)
            info = await bridge.inspect(container_id)
            started = True
        except DockerApiError as exc:
            raise self._error(
                f"cannot start a container of {spec.image} for allocation {spec.allocation_id}",
                exc,
            ) from None
        except trio.TooSlowError:
            raise ExecutorError(
                f"the Docker daemon did not create a container for allocation "
                f"{spec.allocation_id} within {_SHIELDED_TIMEOUT:g} s"
            ) from None
        finally:
            if not started:
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(_SHIELDED_TIMEOUT),
                    contextlib.suppress(DockerApiError),
                ):
                    await bridge.remove(name, force=True)
        execution = DockerExecution(self, container_id, spec, status_from_inspect(info))
        self._track(execution)
        return execution

    async def recover(self) -> list[Execution]:
        """This node's containers (by the ``nunet.node`` label), running or finished,
        re-attached: running ones are watched again, none is stopped."""
        bridge = self._bridge_or_raise()
        found: list[Execution] = []
        try:
            ids = await bridge.container_ids({LABEL_NODE: self._node_id})
            for container_id in ids:
                if container_id in self._executions:
                    found.append(self._executions[container_id])
                    continue
                try:
                    info = await bridge.inspect(container_id)
                except DockerApiError as exc:
                    if exc.status == 404:  # removed meanwhile
                        continue
                    raise
                execution = DockerExecution(
                    self, container_id, spec_from_inspect(info), status_from_inspect(info)
                )
                self._track(execution)
                found.append(execution)
        except DockerApiError as exc:
            raise self._error("cannot list this node's containers", exc) from None
        return found

    # -- inside ------------------------------------------------------------------------------

    def _bridge_or_raise(self) -> DockerBridge:
        if self._bridge is None:
            state = "closed" if self._closed.is_set() else "not entered"
            raise ExecutorError(f"the docker executor is {state} (use it as `async with`)")
        return self._bridge

    def _error(self, what: str, exc: DockerApiError) -> ExecutorError:
        if exc.status == 0:
            return ExecutorUnavailable(f"{what}: no Docker daemon: {exc.message}")
        return ExecutorError(f"{what}: {exc.message}")

    async def _ensure_image(self, bridge: DockerBridge, image: str) -> None:
        if await bridge.image(image) is not None:
            return
        log.info("pulling image %s", image)
        try:
            with trio.fail_after(PULL_TIMEOUT):
                await bridge.pull(image)
        except DockerApiError as exc:
            if exc.status == 0:
                raise
            raise ImageUnavailable(
                f"image {image} is not on this node and cannot be pulled: {exc.message}"
            ) from None
        except trio.TooSlowError:
            raise ImageUnavailable(
                f"image {image} is not on this node and pulling it took over {PULL_TIMEOUT:g} s"
            ) from None
        if await bridge.image(image) is None:
            raise ImageUnavailable(f"image {image} was pulled but the daemon does not have it")

    async def _network_for(self, bridge: DockerBridge, spec: ExecutionSpec) -> str | None:
        """The network a container needs: ``None`` (the daemon's default) unless it publishes
        ports on a daemon without the default bridge, then :data:`PORTS_NETWORK`."""
        if not spec.ports:
            return None
        async with self._network_lock:
            if self._ports_network is None:
                if await bridge.network("bridge") is not None:
                    self._ports_network = ""
                else:
                    if await bridge.network(PORTS_NETWORK) is None:
                        try:
                            await bridge.create_network(
                                {
                                    "Name": PORTS_NETWORK,
                                    "Driver": "bridge",
                                    "CheckDuplicate": True,
                                    "Labels": {"nunet.managed-by": "dmsnode"},
                                }
                            )
                        except DockerApiError as exc:
                            if exc.status != 409:  # made meanwhile by another node
                                raise
                    self._ports_network = PORTS_NETWORK
        return self._ports_network or None

    def _track(self, execution: DockerExecution) -> None:
        self._executions[execution.id] = execution
        if not execution.status().state.finished:
            assert self._nursery is not None
            self._nursery.start_soon(self._watch, execution)

    def _forget(self, execution: DockerExecution) -> None:
        self._executions.pop(execution.id, None)

    async def _watch(self, execution: DockerExecution) -> None:
        """Until the container stops: then its final status. Rides out a daemon that does
        not answer for a while (retrying with backoff)."""
        bridge = self._bridge_or_raise()
        delay = 0.2
        while True:
            try:
                await bridge.wait(execution.id)
                info = await bridge.inspect(execution.id)
            except DockerApiError as exc:
                if exc.status == 404:
                    execution._vanish()
                    return
                log.warning(
                    "cannot watch container %s (%s); retrying in %g s",
                    execution.id[:12],
                    exc.message,
                    delay,
                )
                await trio.sleep(delay)
                delay = min(delay * 2, _WATCH_BACKOFF)
                continue
            if (info.get("State") or {}).get("Status") in _RUNNING:
                await trio.sleep(0.1)
                continue
            execution._finish(info)
            return

    async def _until(self, event: trio.Event) -> None:
        """Wait for ``event``, or raise if the executor closes first (no one to set it)."""
        if event.is_set():
            return
        self._bridge_or_raise()
        # Not a nursery: the caller's cancellation must come out as a plain trio.Cancelled.
        scope = trio.CancelScope()
        self._waiters.add(scope)
        try:
            with scope:
                await event.wait()
        finally:
            self._waiters.discard(scope)
        if not event.is_set():
            raise ExecutorError("the docker executor was closed while waiting on a container")
