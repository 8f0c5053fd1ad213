"""Every failure is JSON ``{error, detail}`` with a 4xx/5xx status: limits, bad bodies, routing,
and unexpected exceptions (after which the server keeps serving)."""

from __future__ import annotations

import logging
from typing import Any

import h11
import pytest
import trio

from dmsnode.api._body import MAX_BODY_BYTES

from .conftest import WAIT, Api, read_response

SEND = "/api/v1/actor/send"


def is_error(reply: Any, status: int, error: str) -> dict[str, Any]:
    assert reply.status == status, reply
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == error
    assert body["detail"]
    return body


async def test_a_declared_oversized_body_is_413_before_it_is_read(api: Api) -> None:
    """Only the headers are sent: the refusal cannot have waited for the body."""
    head = (
        f"POST {SEND} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n"
    ).encode()
    connection = h11.Connection(h11.CLIENT)
    connection.send(
        h11.Request(
            method="POST",
            target=SEND,
            headers=[("Host", "x"), ("Content-Length", str(MAX_BODY_BYTES + 1))],
        )
    )
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream(api.client.host, api.client.port)
        async with stream:
            await stream.send_all(head)
            reply = await read_response(connection, stream)
    body = is_error(reply, 413, "RequestEntityTooLarge")
    assert str(MAX_BODY_BYTES) in body["detail"]


async def test_an_oversized_chunked_body_is_413(api: Api) -> None:
    """No Content-Length: the limit applies as the body arrives."""
    chunk = b"x" * 65536
    connection = h11.Connection(h11.CLIENT)
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream(api.client.host, api.client.port)
        async with stream:
            request = h11.Request(
                method="POST",
                target=SEND,
                headers=[("Host", "x"), ("Transfer-Encoding", "chunked")],
            )
            await stream.send_all(connection.send(request))
            sent = 0
            with trio.move_on_after(WAIT / 2):  # the server may stop reading once it refuses
                while sent <= MAX_BODY_BYTES:
                    await stream.send_all(connection.send(h11.Data(data=chunk)))
                    sent += len(chunk)
                await stream.send_all(connection.send(h11.EndOfMessage()))
            reply = await read_response(connection, stream)
    is_error(reply, 413, "RequestEntityTooLarge")


async def test_a_body_just_under_the_limit_is_read(api: Api) -> None:
    padding = "x" * (MAX_BODY_BYTES - 100)
    reply = await api.client.post(SEND, {"pad": padding})
    body = is_error(reply, 400, "BadRequest")
    assert "'envelope' is missing" in body["detail"]


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b'{"envelope": ', "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object, not a array"),
        (b"", "has no body"),
    ],
)
async def test_bad_json_is_400_naming_the_problem(api: Api, raw: bytes, says: str) -> None:
    reply = await api.client.post(SEND, body=raw)
    assert says in is_error(reply, 400, "BadRequest")["detail"]


async def test_unknown_route_is_404(api: Api) -> None:
    reply = await api.client.get("/api/v1/nothing")
    body = is_error(reply, 404, "NotFound")
    assert "/api/v1/nothing" in body["detail"]
    assert "openapi.json" in body["detail"]


async def test_wrong_method_is_405_with_allow(api: Api) -> None:
    reply = await api.client.get(SEND)
    body = is_error(reply, 405, "MethodNotAllowed")
    assert "takes POST" in body["detail"]
    assert reply.headers["allow"] == "POST"
    reply = await api.client.post("/health", {})
    is_error(reply, 405, "MethodNotAllowed")


async def test_an_unexpected_exception_is_500_and_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        async def list(self, **kwargs: Any) -> list[Any]:
            raise RuntimeError("the disk is on fire")

    api.node.events = Broken()  # type: ignore[attr-defined]
    with caplog.at_level(logging.ERROR, logger="dmsnode.api"):
        reply = await api.client.get("/api/v1/events")
    body = is_error(reply, 500, "InternalError")
    assert "RuntimeError" in body["detail"]
    assert "disk is on fire" not in reply.body.decode()  # details stay in the log
    assert "Traceback" not in reply.body.decode()
    assert any("disk is on fire" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    assert (await api.client.get("/health")).status == 200  # still serving


async def test_errors_are_never_html(api: Api) -> None:
    """A request hypercorn itself refuses (not HTTP at all) gets no HTML and no traceback."""
    received = await api.client.raw(b"NOT HTTP AT ALL\r\n\r\n")
    assert b"<html" not in received.lower()
    assert b"Traceback" not in received
