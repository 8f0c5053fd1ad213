"""WebSocket: the secure session's byte stream carried in binary WebSocket messages.

:class:`WebSocketStream` adapts a trio-websocket connection to ``trio.abc.Stream``, so the very
same :class:`~nuactor.transport.SecureSession` (and its framing) runs over TCP and WS: every
``send_all`` becomes one binary message, and ``receive_some`` hands out the bytes of received
messages. A text message, or a message over :data:`WS_MAX_MESSAGE`, breaks the stream (the
session then fails closed). The client asks for the resource :data:`WS_RESOURCE`; the server
refuses any other with HTTP 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, cast, final

import trio
import trio_websocket

__all__ = ["WS_MAX_MESSAGE", "WS_RESOURCE", "WebSocketStream", "ws_accept", "ws_connect"]

WS_RESOURCE: Final = "/nuactor/1"
WS_MAX_MESSAGE: Final = 1 << 20
"""Largest WebSocket message accepted: the session writes at most ~320 KiB at once."""
_RECEIVE_BUFFER: Final = 65536
_CLOSE_TIMEOUT: Final = 1.0
_CLEAN_CLOSE: Final = (1000, 1001)


@final
class WebSocketStream(trio.abc.Stream):
    """A byte stream over a WebSocket connection (binary messages, one per ``send_all``)."""

    __slots__ = ("_buffer", "_closed", "_connection")

    def __init__(self, connection: trio_websocket.WebSocketConnection) -> None:
        self._connection = connection
        self._buffer = memoryview(b"")
        self._closed = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the WebSocket stream is closed")
        try:
            await self._connection.send_message(bytes(data))
        except trio_websocket.ConnectionClosed as exc:
            raise trio.BrokenResourceError(f"the WebSocket closed: {exc.reason}") from exc

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._closed:
            raise trio.ClosedResourceError("the WebSocket stream is closed")
        if not self._buffer:
            try:
                message = await self._connection.get_message()
            except trio_websocket.ConnectionClosed as exc:
                if exc.reason is not None and exc.reason.code in _CLEAN_CLOSE:
                    return b""
                raise trio.BrokenResourceError(f"the WebSocket closed: {exc.reason}") from exc
            if not isinstance(message, bytes):
                await self.aclose()
                raise trio.BrokenResourceError("the peer sent a WebSocket text message")
            if max_bytes is None or len(message) <= max_bytes:
                return message
            self._buffer = memoryview(message)
        else:
            await trio.lowlevel.checkpoint()
        size = len(self._buffer) if max_bytes is None else max_bytes
        data, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        return data

    async def aclose(self) -> None:
        """Close the WebSocket (a close handshake of at most a second), then the TCP stream."""
        self._closed = True
        with trio.move_on_after(_CLOSE_TIMEOUT):
            await self._connection.aclose()
        await trio.aclose_forcefully(self._connection)


def _host_header(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@final
class _ReaderGuard:
    """Stands in for the nursery trio-websocket starts its reader task in: the reader still
    runs in ``nursery``, but if it ends or fails (a refused upgrade, a protocol error, a closed
    connection) it cancels the pending opening handshake instead of waiting for a timeout, and
    its exception ends this connection only."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.scope = trio.CancelScope()
        self.failure: Exception | None = None

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        async def guarded() -> None:
            try:
                await fn(*args)
            except Exception as exc:
                self.failure = exc
            finally:
                self.scope.cancel()  # harmless once the handshake is over

        self._nursery.start_soon(guarded)

    def broken(self) -> trio.BrokenResourceError:
        reason = repr(self.failure) if self.failure is not None else "the connection closed"
        return trio.BrokenResourceError(f"the WebSocket opening handshake failed: {reason}")


async def ws_connect(
    nursery: trio.Nursery, stream: trio.SocketStream, host: str
) -> WebSocketStream:
    """Run the client's WebSocket opening handshake on ``stream`` (its reader lives in
    ``nursery``). The caller bounds the time. Raises ``trio.BrokenResourceError`` if refused."""
    guard = _ReaderGuard(nursery)
    with guard.scope:
        connection = await trio_websocket.wrap_client_stream(
            cast(trio.Nursery, guard),
            stream,
            _host_header(host),
            WS_RESOURCE,
            max_message_size=WS_MAX_MESSAGE,
            receive_buffer_size=_RECEIVE_BUFFER,
        )
        if connection.closed is None:
            return WebSocketStream(connection)
    raise guard.broken()


async def ws_accept(nursery: trio.Nursery, stream: trio.abc.Stream) -> WebSocketStream:
    """Run the server's WebSocket opening handshake on ``stream`` (its reader lives in
    ``nursery``). The caller bounds the time. Raises ``trio.BrokenResourceError`` if it fails;
    a client asking for another resource than :data:`WS_RESOURCE` gets HTTP 404."""
    guard = _ReaderGuard(nursery)
    with guard.scope:
        request = await trio_websocket.wrap_server_stream(
            cast(trio.Nursery, guard),
            stream,
            max_message_size=WS_MAX_MESSAGE,
            receive_buffer_size=_RECEIVE_BUFFER,
        )
        if request.path != WS_RESOURCE:
            await request.reject(404)
            raise trio.BrokenResourceError(f"a WebSocket client asked for {request.path!r}")
        try:
            return WebSocketStream(await request.accept())
        except trio_websocket.ConnectionClosed as exc:
            raise trio.BrokenResourceError(f"the WebSocket closed: {exc.reason}") from exc
    raise guard.broken()
