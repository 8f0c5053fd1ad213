"""Connections are closed when HTTP says so (the fix in dmsnode/api/_server.py for hypercorn's
trio worker under Quart-trio), and the server starts and stops cleanly.

Each test reads until EOF over a real socket; a connection left open fails it after
``WAIT`` seconds instead of hanging.
"""

from __future__ import annotations

import socket
from typing import Any

import h11
import pytest
import trio

from dmsnode.api import serve_api
from dmsnode.errors import ApiError
from nuactor import Identity

from .conftest import WAIT, Api, read_response, read_to_eof, running_node, serving


def response_of(received: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


async def test_connection_close_on_http11_is_honoured(api: Api) -> None:
    received = await api.client.raw(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, body = response_of(received)
    assert status == 200
    assert headers["connection"].lower() == "close"
    assert body == f'{{"status":"ok","did":"{api.node.did}"}}'.encode()


async def test_http10_without_keep_alive_is_closed(api: Api) -> None:
    received = await api.client.raw(b"GET /health HTTP/1.0\r\n\r\n")
    status, _, body = response_of(received)
    assert status == 200
    assert api.node.did.encode() in body


async def test_a_post_with_connection_close_is_closed(api: Api) -> None:
    received = await api.client.raw(
        b"POST /api/v1/actor/send HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    status, _, body = response_of(received)
    assert status == 400
    assert b"'envelope' is missing" in body


async def test_an_idle_keep_alive_connection_is_closed_after_the_timeout(api: Api) -> None:
    """The fixture's keep-alive timeout is 0.5 s: two requests on one connection, then EOF."""
    connection = h11.Connection(h11.CLIENT)
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream(api.client.host, api.client.port)
        async with stream:
            for _ in range(2):
                request = h11.Request(method="GET", target="/health", headers=[("Host", "x")])
                await stream.send_all(connection.send(request))
                await stream.send_all(connection.send(h11.EndOfMessage()))
                reply = await read_response(connection, stream)
                assert reply.status == 200
                assert "connection" not in reply.headers  # kept alive
                connection.start_next_cycle()
            assert await read_to_eof(stream) == b""


async def test_cancelling_closes_idle_connections_and_stops_listening(user: Identity) -> None:
    """Stopping gracefully: an idle keep-alive connection sees EOF, the port is closed, and
    node.api_url is cleared. The keep-alive timeout is long, so only the stop can close it."""
    async with running_node(user) as node:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(_serve, node, {"keep_alive_timeout": 60.0})
            assert node.api_url == url
            host, port = url.removeprefix("http://").rsplit(":", 1)
            connection = h11.Connection(h11.CLIENT)
            with trio.fail_after(WAIT):
                stream = await trio.open_tcp_stream(host, int(port))
                async with stream:
                    request = h11.Request(method="GET", target="/health", headers=[("Host", "x")])
                    await stream.send_all(connection.send(request))
                    await stream.send_all(connection.send(h11.EndOfMessage()))
                    assert (await read_response(connection, stream)).status == 200
                    nursery.cancel_scope.cancel()
                    assert await read_to_eof(stream) == b""
        assert node.api_url is None
        with pytest.raises(OSError, match=port):
            await trio.open_tcp_stream(host, int(port))


async def _serve(node: Any, kwargs: dict[str, Any], *, task_status: Any) -> None:
    await serve_api(node, "127.0.0.1", 0, task_status=task_status, **kwargs)


async def test_a_taken_port_is_an_api_error_naming_the_address(user: Identity) -> None:
    taken = socket.socket()
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with running_node(user) as node:
            with pytest.raises(ApiError, match=rf"127\.0\.0\.1:{port}") as raised:
                await serve_api(node, "127.0.0.1", port)
            assert "rest.port" in str(raised.value)
            assert node.api_url is None
    finally:
        taken.close()


async def test_the_bound_url_is_reported(user: Identity) -> None:
    async with running_node(user) as node, serving(node) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        assert host == "127.0.0.1"
        assert int(port) > 0
        assert node.api_url == url
        assert node.status(full=True)["api"] == url
