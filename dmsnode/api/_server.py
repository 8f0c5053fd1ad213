"""Serving the API: hypercorn's trio worker in the caller's nursery, and a fix for connections
it would otherwise never close.

The connection-close problem (hypercorn issues #330 and #170), and its fix
--------------------------------------------------------------------------
Under Quart-trio, hypercorn's trio worker keeps a connection open after a response to
``Connection: close`` or to HTTP/1.0 without keep-alive, and never closes an idle keep-alive
connection when ``keep_alive_timeout`` passes. A bare ASGI app does not show it.

Why: hypercorn does the connection's bookkeeping *inside the app's last* ``send()`` *call*,
in the app's task. The final ``http.response.body`` goes ``HTTPStream.app_send`` →
``_send_closed`` → ``H11Protocol.stream_send(StreamClosed)`` → ``_maybe_recycle``, which
first queues ``http.disconnect`` for the app (``_close_stream``) and then either closes the
socket (``TCPServer.protocol_send(Closed)`` → ``_close``: ``send_eof`` + ``aclose``) or, for
keep-alive, starts the idle timer (``protocol_send(Updated(idle=True))`` →
``idle_task.restart``, which takes a ``trio.Lock``). Quart-trio runs each request as two tasks
in one nursery, one reading ASGI messages and one handling the request; the reader cancels
that nursery as soon as it sees ``http.disconnect``. Queuing the disconnect is a checkpoint,
so the reader runs, cancels the nursery, and the *sending* task, still inside hypercorn's
bookkeeping, is cancelled at its next checkpoint: ``send_eof`` (so ``aclose`` never runs and
the socket stays open) or the idle timer's lock (so the timer never starts). The ``Cancelled``
then unwinds into Quart-trio, which swallows it as the nursery's own cancellation; nothing
is logged, and the connection is left waiting for bytes that never come.

The fix (:func:`_finish_sends`): wrap the app so that each ``send`` it makes runs under a
shielded cancel scope. Hypercorn's bookkeeping then completes even when Quart-trio has
cancelled its request nursery; the cancellation still lands, on the app's next checkpoint
after ``send`` returns. A shielded ``send`` cannot hang on a client that stops reading any
longer than before: hypercorn already shields its own ``send_all`` to the socket.

Stopping: cancelling :func:`serve_api` triggers hypercorn's graceful shutdown (stop listening,
close idle connections, give requests in flight ``graceful_timeout`` seconds) instead of
tearing the server down mid-write, which skips closing sockets (hypercorn issue #106).
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Final

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

from ..errors import ApiError
from ._app import create_app

if TYPE_CHECKING:
    from ..node import Node

__all__ = ["GRACEFUL_TIMEOUT", "KEEP_ALIVE_TIMEOUT", "serve_api"]

#: Seconds an idle keep-alive connection stays open.
KEEP_ALIVE_TIMEOUT: Final = 5.0
#: Seconds requests in flight get to finish when the server stops.
GRACEFUL_TIMEOUT: Final = 3.0
#: Beyond the graceful period, how long hypercorn may take to wind down before it is cancelled.
_STOP_MARGIN: Final = 2.0
_BACKLOG: Final = 128

log = logging.getLogger("dmsnode.api")


async def serve_api(
    node: Node,
    host: str,
    port: int,
    *,
    keep_alive_timeout: float = KEEP_ALIVE_TIMEOUT,
    graceful_timeout: float = GRACEFUL_TIMEOUT,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``node``'s REST API on ``host:port`` (port 0: any free port) until cancelled.

    Calls ``task_status.started(url)`` with the bound URL (``http://127.0.0.1:40123``) once
    listening, and sets ``node.api_url`` while serving. An address that cannot be bound (a
    taken port) raises :class:`~dmsnode.errors.ApiError` naming it. Cancelling stops the
    server: no new connections, idle ones closed, requests in flight given
    ``graceful_timeout`` seconds.
    """
    sock = await _listen(host, port)
    try:
        url = _url(sock)
        app = _finish_sends(create_app(node))
        config = _config(keep_alive_timeout, graceful_timeout)
    except BaseException:
        sock.close()
        raise
    # Hypercorn takes the bound socket by descriptor and owns it from here (it closes it).
    # It adopts the descriptor right after the app's lifespan start-up, which cannot fail
    # for this app (it has no start-up hooks), so the descriptor is never orphaned.
    config.bind = [f"fd://{sock.detach()}"]
    stop = trio.Event()
    server_scope = trio.CancelScope(shield=True)

    async def run_server(*, task_status: trio.TaskStatus[list[str]]) -> None:
        # Shielded: the caller's cancellation becomes ``stop`` (a graceful shutdown), and the
        # scope's deadline, set then, bounds how long that may take.
        with server_scope:
            await serve(
                app, config, shutdown_trigger=stop.wait, task_status=task_status, mode="asgi"
            )
        if not stop.is_set():
            raise ApiError(f"the REST API server at {url} stopped on its own")

    async with trio.open_nursery() as nursery:
        await nursery.start(run_server)
        node.api_url = url
        log.info("REST API listening on %s", url)
        try:
            task_status.started(url)
            await trio.sleep_forever()
        finally:
            node.api_url = None
            stop.set()
            server_scope.deadline = trio.current_time() + graceful_timeout + _STOP_MARGIN


async def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening, or :class:`ApiError` naming the address
    (binding here, not in hypercorn, makes a taken port one clear error, not a group)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = await trio.socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ApiError(
            f"cannot serve the REST API on {where}: {exc.strerror or exc} (check rest.addr)"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except (OSError, OverflowError) as exc:
        sock.close()
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ApiError(
            f"cannot serve the REST API on {where}: {reason}; is another node or program "
            "using it? Stop it, or choose another port (dmsnode config set rest.port ...)"
        ) from None
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


def _config(keep_alive_timeout: float, graceful_timeout: float) -> HypercornConfig:
    config = HypercornConfig()
    config.keep_alive_timeout = keep_alive_timeout
    config.graceful_timeout = graceful_timeout
    config.backlog = _BACKLOG
    config.accesslog = None
    config.errorlog = logging.getLogger("dmsnode.api.http")
    return config


def _finish_sends(app: ASGIFramework) -> ASGIFramework:
    """``app`` whose every ``send`` completes even if the app's own task is being cancelled:
    the fix for connections never closed (see the module's docstring)."""

    async def finishing_app(
        scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        async def finishing_send(message: ASGISendEvent) -> None:
            with trio.CancelScope(shield=True):
                await send(message)

        await app(scope, receive, finishing_send)

    return finishing_app
