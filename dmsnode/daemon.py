"""``dmsnode run``: the node as a long-running process.

Loads the ``dms`` key and trust context, opens the store, starts the network, the actor system
and the REST API, and runs until SIGINT or SIGTERM, which stop everything cleanly. Anything
that keeps it from starting (a taken port, a missing key, a bad config) is raised as one
:class:`~dmsnode.errors.DmsError` with a line a person can act on.
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import trio

from nuactor import Identity, TrustContext

from .config import Config
from .errors import DmsError
from .executors import Availability, Executor, availabilities, available_executors
from .node import Node, trust_path
from .resources import Ledger, detect_hardware
from .store import STORE_FILENAME, open_store

__all__ = ["open_trust", "run_daemon"]

log = logging.getLogger("dmsnode.daemon")

#: How often the trust context file is checked for changes made by ``dmsnode cap``.
TRUST_POLL_SECONDS = 2.0
#: How often expired commitments are dropped (and recorded as events).
COMMIT_EXPIRY_SECONDS = 5.0


def open_trust(user_dir: Path, identity: Identity, context: str = "dms") -> TrustContext:
    """The node's trust context: loaded from its file, or a new one saved there."""
    path = trust_path(user_dir, context)
    if path.is_file():
        return TrustContext.load(path, identity)
    trust = TrustContext(identity, path=path)
    trust.save()
    return trust


async def run_daemon(
    config: Config,
    identity: Identity,
    trust: TrustContext,
    *,
    on_ready: Callable[[dict[str, Any]], None] = lambda info: None,
) -> None:
    """Run the node until SIGINT/SIGTERM (or cancellation)."""
    work_dir = config.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    async with open_store(work_dir / STORE_FILENAME) as store:
        ledger = await Ledger.open(store, port_range=tuple(config.get("job.port_range")))
        hardware = await detect_hardware(work_dir)  # logs what it had to skip
        node = Node(config, identity, trust, store=store, ledger=ledger, hardware=hardware)
        async with _executors(node) as executors:
            # Known before the node starts: its provider side recovers executions at once.
            node.executors = executors
            node.executor_availability.update(await availabilities(executors))
            for name, availability in node.executor_availability.items():
                if not availability.available:
                    log.info("executor %s unavailable: %s", name, availability.reason)
            await _serve(node, ledger, on_ready)
        await node.record("node.stopped", {"did": node.did})


async def _serve(node: Node, ledger: Ledger, on_ready: Callable[[dict[str, Any]], None]) -> None:
    """Run the started node and its API until a signal."""
    from .api import serve_api  # the API pulls in Quart: only a running node needs it

    rest = node.config.get("rest")
    async with _started(node), trio.open_nursery() as nursery:
        api_url = await nursery.start(serve_api, node, rest["addr"], rest["port"])
        nursery.start_soon(_watch_trust, node)
        nursery.start_soon(_expire_commitments, node, ledger)
        info = {"did": node.did, "p2p": node.network.addresses, "api": api_url}
        for plugin in node.plugins:
            if plugin.error:
                await node.record(
                    "plugin.failed",
                    {"plugin": plugin.name, "error": plugin.error},
                    level="error",
                )
        # Catch the signals before saying "ready", so a prompt SIGTERM still stops cleanly.
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            await node.record("node.started", info)
            on_ready(info)
            async for received in signals:
                log.info("stopping on %s", signal.Signals(received).name)
                break
        nursery.cancel_scope.cancel()


@contextlib.asynccontextmanager
async def _started(node: Node) -> AsyncIterator[Node]:
    """``node.running()``, with a failure to listen said in one line."""
    entered = False
    try:
        async with node.running():
            entered = True
            yield node
    except OSError as exc:
        if entered:
            raise
        listen = ", ".join(node.config.get("p2p.listen_address"))
        raise DmsError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


@contextlib.asynccontextmanager
async def _executors(node: Node) -> AsyncIterator[dict[str, Executor]]:
    """The node's executors, entered (they own background tasks); one that cannot even start
    is left out and reported unavailable, never fatal."""
    found = available_executors(node.config, node_id=node.did)
    async with contextlib.AsyncExitStack() as stack:
        entered: dict[str, Executor] = {}
        for name, executor in found.items():
            try:
                entered[name] = await stack.enter_async_context(executor)
            except Exception as exc:
                log.warning("executor %s could not start: %s: %s", name, type(exc).__name__, exc)
                node.executor_availability[name] = Availability(False, f"could not start: {exc}")
        yield entered


async def _expire_commitments(node: Node, ledger: Ledger) -> None:
    """Drop commitments whose TTL passed (the ledger also does it lazily) and say so."""
    while True:
        await trio.sleep(COMMIT_EXPIRY_SECONDS)
        for alloc_id in await ledger.expire():
            await node.record("ledger.commit_expired", {"allocation": alloc_id})


async def _watch_trust(node: Node) -> None:
    """Pick up changes ``dmsnode cap`` makes to the trust context file while the node runs."""
    path = node.trust.path
    if path is None:
        return
    seen = _mtime(path)
    while True:
        await trio.sleep(TRUST_POLL_SECONDS)
        current = _mtime(path)
        if current == seen:
            continue
        seen = current
        try:
            fresh = TrustContext.load(path, node.identity)
        except Exception as exc:  # a half-edited or broken file: keep the old context
            log.error("trust context %s not reloaded: %s", path, exc)
            continue
        node.trust = fresh
        node.system.trust = fresh
        await node.record("trust.reloaded", {"path": str(path)})


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return None
