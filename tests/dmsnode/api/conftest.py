"""Fixtures for the REST API tests: real nodes, the API served on a real socket, and a small
HTTP/1.1 client (trio sockets + h11) that talks to it the way any client would."""

from __future__ import annotations

import base64
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import h11
import pytest
import trio

from dmsnode.api import serve_api
from dmsnode.config import Config
from dmsnode.node import Node
from nuactor import Actor, Context, Envelope, Handle, Identity, ReplyTo, TrustContext

#: Every network wait in these tests is bounded by this, so a hang fails instead of stalling.
WAIT = 10.0
REPLY_BEHAVIOUR = "/nuactor/reply"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One request per connection, HTTP/1.1 via h11, reading the whole response."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host = host
        self.port = int(port)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Reply:
        data = (
            body
            if body is not None
            else b""
            if json_body is None
            else json.dumps(json_body).encode()
        )
        fields = [("Host", self.host), ("Connection", "close"), *headers]
        if method != "GET" or data:
            fields += [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        connection = h11.Connection(h11.CLIENT)
        with trio.fail_after(WAIT):
            stream = await trio.open_tcp_stream(self.host, self.port)
            async with stream:
                await stream.send_all(
                    connection.send(h11.Request(method=method, target=path, headers=fields))
                )
                if data:
                    await stream.send_all(connection.send(h11.Data(data=data)))
                await stream.send_all(connection.send(h11.EndOfMessage()))
                return await read_response(connection, stream)

    async def get(self, path: str) -> Reply:
        return await self.request("GET", path)

    async def post(self, path: str, json_body: Any = None, **kwargs: Any) -> Reply:
        return await self.request("POST", path, json_body=json_body, **kwargs)

    async def raw(self, data: bytes) -> bytes:
        """Send ``data`` and read until the server closes the connection."""
        with trio.fail_after(WAIT):
            stream = await trio.open_tcp_stream(self.host, self.port)
            async with stream:
                await stream.send_all(data)
                return await read_to_eof(stream)


async def read_response(connection: h11.Connection, stream: trio.SocketStream) -> Reply:
    response: h11.Response | None = None
    chunks: list[bytes] = []
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(65536))
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            headers = {k.decode().lower(): v.decode() for k, v in response.headers}
            return Reply(response.status_code, headers, b"".join(chunks))
        elif isinstance(event, h11.ConnectionClosed):
            raise AssertionError("the server closed the connection without a full response")


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    received = bytearray()
    while chunk := await stream.receive_some(65536):
        received += chunk
    return bytes(received)


class Notes:
    """What ``/dms/test/note`` was sent, in order; :meth:`wait_for` waits for more."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = trio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, count: int) -> list[Any]:
        with trio.fail_after(WAIT):
            while len(self.items) < count:
                await self._changed.wait()
        return self.items


@dataclass
class Api:
    """A running node and its API."""

    node: Node
    url: str
    client: Client
    user: Identity
    notes: Notes


def node_config() -> Config:
    config = Config()
    config.set("p2p.listen_address", ["/ip4/127.0.0.1/tcp/0"])
    return config


def extra_behaviours(notes: Notes) -> Callable[[Actor], None]:
    """Behaviours the tests call through the gateway, on the root actor."""

    def register(actor: Actor) -> None:
        @actor.on("/dms/test/note")
        async def note(ctx: Context, body: Any) -> None:
            notes.add(body)

        @actor.on("/dms/test/echo")
        async def echo(ctx: Context, body: Any) -> Any:
            return {"echo": body, "caller": ctx.sender}

        @actor.on("/dms/test/fail")
        async def fail(ctx: Context, body: Any) -> None:
            raise ValueError(f"cannot do {body!r}")

        @actor.on("/dms/test/hang", concurrent=True)
        async def hang(ctx: Context, body: Any) -> None:
            await trio.sleep_forever()

    return register


@contextlib.asynccontextmanager
async def running_node(user: Identity, notes: Notes | None = None) -> AsyncIterator[Node]:
    identity = Identity.generate()
    trust = TrustContext(identity)
    trust.add_root(user.did)
    node = Node(
        node_config(),
        identity,
        trust,
        extra_behaviours=extra_behaviours(notes or Notes()),
        plugins=False,
    )
    async with node.running():
        yield node


@contextlib.asynccontextmanager
async def serving(node: Node, **kwargs: Any) -> AsyncIterator[str]:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(functools.partial(serve_api, node, "127.0.0.1", 0, **kwargs))
        yield url
        nursery.cancel_scope.cancel()


@pytest.fixture
def user() -> Identity:
    return Identity.generate()


@pytest.fixture
async def api(user: Identity) -> AsyncIterator[Api]:
    notes = Notes()
    async with (
        running_node(user, notes) as node,
        serving(node, keep_alive_timeout=0.5, graceful_timeout=1.0) as url,
    ):
        yield Api(node, url, Client(url), user, notes)


def envelope(
    signer: Identity,
    to: str,
    beh: str,
    body: Any = None,
    *,
    reply_to: str | None = None,
    topic: str | None = None,
    **kwargs: Any,
) -> bytes:
    """An encoded envelope ``signer`` signed; ``reply_to`` is the node whose gateway relays."""
    return (
        Envelope.build(
            sender=Handle(signer.did, "cli"),
            to=Handle(to, "root"),
            beh=beh,
            body=body,
            re=None if reply_to is None else ReplyTo(reply_to, "system", REPLY_BEHAVIOUR),
            topic=topic,
            **kwargs,
        )
        .sign(signer)
        .encode()
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
