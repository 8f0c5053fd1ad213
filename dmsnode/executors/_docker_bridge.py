"""aiodocker seen from Trio: the only module of dmsnode that touches asyncio.

aiodocker is an asyncio library and dmsnode runs on Trio. A :class:`DockerBridge` opens a
trio-asyncio loop for its lifetime and creates the aiodocker client on it; every call runs
there as an asyncio task that the calling Trio task awaits, so cancelling the Trio task
cancels the request. Streams (followed logs) are pulled one item per call and closed on the
asyncio side. Failures come back as :class:`DockerApiError`: nothing outside this module sees
aiodocker, aiohttp or asyncio (DESIGN §3.5).

Logs and stats are read from the raw response (``Docker._query``) rather than through
aiodocker's helpers: those drop which stream each log frame came from, and leave the
connection open when they are cancelled mid-stream; here every response is closed however
its reader leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import struct
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from typing import Any, Final, Literal, TypeVar, final

import aiodocker
import aiohttp
import trio
import trio_asyncio

__all__ = ["DockerApiError", "DockerBridge", "Stream"]

T = TypeVar("T")
Stream = Literal["stdout", "stderr"]

#: A multiplexed log frame's header: stream (1 stdout, 2 stderr), 3 bytes of padding, size.
_FRAME: Final = struct.Struct(">BxxxL")
_STREAMS: Final[dict[int, Stream]] = {1: "stdout", 2: "stderr"}
#: aiodocker's status for "could not connect".
_NO_CONNECTION: Final = 900
#: How long closing a stream on the asyncio side may take once its reader has gone.
_CLOSE_TIMEOUT: Final = 5.0


class DockerApiError(Exception):
    """The Docker daemon refused a request (``status`` is its HTTP status) or could not be
    reached (``status`` 0); the message is the daemon's or the connection's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@final
class DockerBridge:
    """An aiodocker client on its own trio-asyncio loop, used as ``async with``.

    Entering never fails for want of a daemon: a client that cannot even be created (no
    socket found) is remembered as the reason, and every call raises it as a
    :class:`DockerApiError` with status 0.
    """

    def __init__(self, url: str | None = None) -> None:
        #: Where the daemon is, as people write it (for messages).
        self.url = url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self._requested = url
        self._stack = contextlib.AsyncExitStack()
        self._loop: Any = None
        self._client: aiodocker.Docker | None = None
        self._unusable = ""

    async def __aenter__(self) -> DockerBridge:
        self._loop = await self._stack.enter_async_context(trio_asyncio.open_loop())
        try:
            self._client = await self._loop.run_aio_coroutine(self._make_client())
        except (ValueError, AssertionError) as exc:
            # aiodocker found no daemon address to use (0.27 asserts rather than raises).
            self._unusable = f"no Docker daemon address ({str(exc) or 'no socket found'})"
        except BaseException:
            await self._stack.aclose()  # never leave the asyncio loop entered behind us
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._client is not None:
                client, self._client = self._client, None
                with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_TIMEOUT):
                    await self._loop.run_aio_coroutine(client.close())
        finally:
            await self._stack.aclose()

    async def _make_client(self) -> aiodocker.Docker:
        # aiohttp's session wants a running asyncio loop: create it on the bridge's loop.
        return aiodocker.Docker(url=self._requested)

    async def _run(self, call: Callable[[aiodocker.Docker], Awaitable[T]]) -> T:
        """Run ``call(client)`` on the asyncio loop; its errors as :class:`DockerApiError`."""
        client = self._client
        if client is None:
            if self._loop is None:
                raise RuntimeError("DockerBridge is used as `async with`")
            raise DockerApiError(0, self._unusable or "the Docker client is closed")

        async def on_asyncio() -> T:
            try:
                return await call(client)
            except aiodocker.DockerError as exc:
                raise _api_error(exc) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise DockerApiError(0, f"cannot reach {self.url}: {exc}") from None

        result: T = await self._loop.run_aio_coroutine(on_asyncio())
        return result

    # -- the daemon ----------------------------------------------------------------------

    async def version(self) -> dict[str, Any]:
        return await self._run(lambda d: d.version())

    # -- images --------------------------------------------------------------------------

    async def image(self, name: str) -> dict[str, Any] | None:
        """The image's inspect document, ``None`` if it is not on this daemon."""
        try:
            return await self._run(lambda d: d.images.inspect(name))
        except DockerApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def pull(self, name: str) -> None:
        async def pull(d: aiodocker.Docker) -> None:
            await d.images.pull(name)

        await self._run(pull)

    # -- networks ------------------------------------------------------------------------

    async def network(self, name: str) -> dict[str, Any] | None:
        """The network's inspect document, ``None`` if there is none of that name."""

        async def show(d: aiodocker.Docker) -> dict[str, Any]:
            network = await d.networks.get(name)
            info: dict[str, Any] = await network.show()
            return info

        try:
            return await self._run(show)
        except DockerApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create_network(self, config: Mapping[str, Any]) -> str:
        async def create(d: aiodocker.Docker) -> str:
            network = await d.networks.create(dict(config))
            return str(network.id)

        return await self._run(create)

    # -- containers ----------------------------------------------------------------------

    async def create_container(self, config: Mapping[str, Any], name: str) -> str:
        async def create(d: aiodocker.Docker) -> str:
            container = await d.containers.create(dict(config), name=name)
            return container.id

        return await self._run(create)

    async def start_container(self, container: str) -> None:
        await self._run(lambda d: d.containers.container(container).start())

    async def inspect(self, container: str) -> dict[str, Any]:
        return await self._run(lambda d: d.containers.container(container).show())

    async def wait(self, container: str) -> dict[str, Any]:
        """Until the container is not running; the daemon's answer (``StatusCode``)."""
        return await self._run(lambda d: d.containers.container(container).wait())

    async def kill(self, container: str, signal: str) -> None:
        await self._run(lambda d: d.containers.container(container).kill(signal=signal))

    async def remove(self, container: str, *, force: bool = False) -> None:
        await self._run(lambda d: d.containers.container(container).delete(force=force))

    async def stats(self, container: str) -> dict[str, Any]:
        """One sample of the stats API (the daemon takes two, a second apart, for CPU %)."""

        async def sample(d: aiodocker.Docker) -> dict[str, Any]:
            path = f"containers/{container}/stats"
            async with _response(d, path, {"stream": "0"}) as response:
                data = await response.json(content_type=None)
            return data if isinstance(data, dict) else {}

        return await self._run(sample)

    async def container_ids(self, labels: Mapping[str, str]) -> list[str]:
        """The ids of every container (running or not) that carries all of ``labels``."""
        filters = json.dumps({"label": [f"{key}={value}" for key, value in labels.items()]})

        async def listing(d: aiodocker.Docker) -> list[str]:
            return [c.id for c in await d.containers.list(all="1", filters=filters)]

        return await self._run(listing)

    async def exec_run(
        self, container: str, argv: Sequence[str], *, limit: int = 64 * 1024
    ) -> tuple[int | None, str]:
        """Run ``argv`` in the running ``container`` (``docker exec``): its exit code and its
        output, stdout and stderr together (the first ``limit`` bytes)."""

        async def run(d: aiodocker.Docker) -> tuple[int | None, str]:
            target = d.containers.container(container)
            execution = await target.exec(list(argv), stdout=True, stderr=True)
            chunks: list[bytes] = []
            size = 0
            async with execution.start(detach=False) as stream:
                while (message := await stream.read_out()) is not None:
                    if size < limit:
                        chunks.append(message.data)
                        size += len(message.data)
            info = await execution.inspect()
            code = info.get("ExitCode")
            output = b"".join(chunks)[:limit].decode("utf-8", "replace")
            return (code if isinstance(code, int) else None), output

        return await self._run(run)

    async def logs(self, container: str, since: str | None) -> list[tuple[Stream, str]]:
        """What the container wrote so far, both streams in the daemon's (time) order: each
        chunk with its timestamp."""

        async def read(d: aiodocker.Docker) -> list[tuple[Stream, str]]:
            items = []
            async with _response(d, f"containers/{container}/logs", _log_params(since)) as r:
                while (item := await _next_frame(r)) is not None:
                    items.append(item)
            return items

        return await self._run(read)

    async def follow_logs(
        self, container: str, since: str | None
    ) -> AsyncGenerator[tuple[Stream, str], None]:
        """Like :meth:`logs`, then what comes, until the container stops.

        The response is opened, read (one frame per call) and closed on the asyncio side; a
        Trio reader that goes away (or is cancelled) closes it.
        """
        params = {**_log_params(since), "follow": "1"}
        opened: list[contextlib.AbstractAsyncContextManager[aiohttp.ClientResponse]] = []

        async def open_(d: aiodocker.Docker) -> aiohttp.ClientResponse:
            manager = _response(d, f"containers/{container}/logs", params)
            response = await manager.__aenter__()
            opened.append(manager)
            return response

        response = await self._run(open_)
        try:
            while True:
                item = await self._run(lambda _: _next_frame(response))
                if item is None:
                    return
                yield item
        finally:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(_CLOSE_TIMEOUT),
                contextlib.suppress(DockerApiError, RuntimeError),
            ):
                await self._run(lambda _: opened[0].__aexit__(None, None, None))


@contextlib.asynccontextmanager
async def _response(
    client: aiodocker.Docker, path: str, params: Mapping[str, str]
) -> AsyncIterator[aiohttp.ClientResponse]:
    """(asyncio) A GET of the Docker API as a raw response, closed however its user leaves."""
    async with client._query(path, "GET", params=dict(params), timeout=None) as response:
        try:
            yield response
        finally:
            response.close()


async def _next_frame(response: aiohttp.ClientResponse) -> tuple[Stream, str] | None:
    """(asyncio) The next frame of a multiplexed log stream (a container without a TTY),
    ``None`` at its end."""
    content = response.content
    while True:
        try:
            header = await content.readexactly(_FRAME.size)
        except asyncio.IncompleteReadError:
            return None  # the end of the logs (or of the container, when following)
        kind, size = _FRAME.unpack(header)
        payload = await content.readexactly(size) if size else b""
        if kind in _STREAMS:
            return _STREAMS[kind], payload.decode("utf-8", "replace")


def _log_params(since: str | None) -> dict[str, str]:
    params = {"stdout": "1", "stderr": "1", "timestamps": "1"}
    if since is not None:
        params["since"] = since
    return params


def _api_error(exc: aiodocker.DockerError) -> DockerApiError:
    message = exc.message
    if isinstance(message, Mapping):
        message = message.get("message", message)
    # aiodocker says 900 when the connection failed: no HTTP status at all.
    return DockerApiError(0 if exc.status == _NO_CONNECTION else exc.status, str(message).strip())
