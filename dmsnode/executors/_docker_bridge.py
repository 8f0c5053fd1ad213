"""aiodocker seen from Trio: the only module of dmsnode that touches asyncio.

aiodocker is an asyncio library and dmsnode runs on Trio. A :class:`DockerBridge` opens a
trio-asyncio loop for its lifetime and creates the aiodocker client on it; every call runs
there as an asyncio task that the calling Trio task awaits, so cancelling the Trio task
cancels the request. Streams (followed logs) are pulled one item per call and closed on the
asyncio side. Failures come back as :class:`DockerApiError`: nothing outside this module sees
aiodocker, aiohttp or asyncio (DESIGN §3.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Final, Literal, TypeVar, final

import aiodocker
import aiohttp
import trio
import trio_asyncio

__all__ = ["DockerApiError", "DockerBridge", "Stream"]

T = TypeVar("T")
Stream = Literal["stdout", "stderr"]

#: Followed logs waiting for a slow reader, per call, before the daemon is made to wait.
_FOLLOW_BUFFER: Final = 1024
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
        except ValueError as exc:  # aiodocker found no daemon address to use
            self._unusable = f"no Docker daemon address ({exc})"
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
            samples = await d.containers.container(container).stats(stream=False)
            return samples[0] if samples else {}

        return await self._run(sample)

    async def container_ids(self, labels: Mapping[str, str]) -> list[str]:
        """The ids of every container (running or not) that carries all of ``labels``."""
        filters = json.dumps({"label": [f"{key}={value}" for key, value in labels.items()]})

        async def listing(d: aiodocker.Docker) -> list[str]:
            return [c.id for c in await d.containers.list(all="1", filters=filters)]

        return await self._run(listing)

    async def logs(self, container: str, stream: Stream, since: str | None) -> list[str]:
        """What the container wrote to ``stream`` so far: chunks, each with its timestamp."""
        options = _log_options(stream, since)
        return await self._run(lambda d: d.containers.container(container).log(**options))

    async def follow_logs(
        self, container: str, since: str | None
    ) -> AsyncGenerator[tuple[Stream, str], None]:
        """stdout and stderr chunks (timestamped) as they come, until the container stops.

        Both streams are followed on the asyncio side and merged there; each item is then
        fetched by its own call, so a Trio reader that goes away (or is cancelled) closes
        them.
        """
        if self._client is None:
            await self.version()  # raises why there is no client
        assert self._client is not None
        merged = _merged_logs(self._client.containers.container(container), since, self.url)
        try:
            while True:
                item = await self._run(lambda _: _next_or_none(merged))
                if item is None:
                    return
                yield item
        finally:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(_CLOSE_TIMEOUT),
                contextlib.suppress(DockerApiError, RuntimeError),
            ):
                await self._run(lambda _: merged.aclose())


def _log_options(stream: Stream, since: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"stdout": stream == "stdout", "stderr": stream == "stderr"}
    options["timestamps"] = True
    if since is not None:
        options["since"] = since
    return options


async def _next_or_none(generator: AsyncIterator[T]) -> T | None:
    """The next item, or ``None`` at the end (StopAsyncIteration cannot leave a task)."""
    try:
        return await generator.__anext__()
    except StopAsyncIteration:
        return None


async def _merged_logs(
    handle: Any, since: str | None, url: str
) -> AsyncGenerator[tuple[Stream, str], None]:
    """(asyncio) Both streams of a container's followed logs, merged as they arrive."""
    queue: asyncio.Queue[tuple[Stream, str] | BaseException | None] = asyncio.Queue(_FOLLOW_BUFFER)

    async def pump(stream: Stream) -> None:
        try:
            async for chunk in handle.log(follow=True, **_log_options(stream, since)):
                await queue.put((stream, chunk))
        except asyncio.CancelledError:
            raise
        except aiodocker.DockerError as exc:
            await queue.put(_api_error(exc))
        except (aiohttp.ClientError, OSError) as exc:
            await queue.put(DockerApiError(0, f"cannot reach {url}: {exc}"))
        else:
            await queue.put(None)

    pumps = [asyncio.ensure_future(pump("stdout")), asyncio.ensure_future(pump("stderr"))]
    try:
        running = len(pumps)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


def _api_error(exc: aiodocker.DockerError) -> DockerApiError:
    message = exc.message
    if isinstance(message, Mapping):
        message = message.get("message", message)
    # aiodocker says 900 when the connection failed: no HTTP status at all.
    return DockerApiError(0 if exc.status == _NO_CONNECTION else exc.status, str(message).strip())
