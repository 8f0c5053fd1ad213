"""Health checks of running allocations: a command run inside the execution, or an HTTP GET
through the allocation's port mapping.

A ``command`` check runs its ``exec`` in the execution (``Execution.run_command``: the docker
executor has it, ``docker exec``); it is healthy when the command exits 0 (and, with a
``response``, prints it). An executor that cannot run commands in an execution makes the check
unsupported: the allocation is then judged by its state. An ``http`` check's endpoint is written
as seen from inside the allocation (``http://127.0.0.1:8000/``); the provider reaches it on the
public port mapped to that private port.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Final

import trio

from ..ensemble import HealthCheck
from ..errors import DmsError, ExecutionRefused
from ..executors import Execution, PortMapping

__all__ = ["UNSUPPORTED", "probe"]

#: What :func:`probe` answers for a check it cannot run.
UNSUPPORTED: Final = "unsupported"
_MAX_BODY: Final = 64 * 1024


async def probe(
    check: HealthCheck, ports: Sequence[PortMapping], execution: Execution | None = None
) -> str | None:
    """One try of ``check``: ``None`` when healthy, else why not (or :data:`UNSUPPORTED`)."""
    if check.type == "command":
        return await _command(check, execution)
    url = urllib.parse.urlsplit(check.endpoint)
    host = url.hostname or "127.0.0.1"
    port = url.port or (443 if url.scheme == "https" else 80)
    if url.scheme != "http":
        return UNSUPPORTED
    if host in ("127.0.0.1", "localhost", "::1", "0.0.0.0"):
        mapped = [p.host_port for p in ports if p.container_port == port]
        if mapped:
            port = mapped[0]
        host = "127.0.0.1"
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    try:
        with trio.fail_after(check.timeout):
            status, body = await _get(host, port, path)
    except trio.TooSlowError:
        return f"no answer from {host}:{port} within {check.timeout:g} s"
    except OSError as exc:
        return f"cannot reach {host}:{port}: {exc.strerror or exc}"
    except ValueError as exc:
        return f"bad answer from {host}:{port}: {exc}"
    if not 200 <= status < 300:
        return f"HTTP {status} from {check.endpoint}"
    if check.response is not None and body.strip() != check.response.value.strip():
        return f"{check.endpoint} answered {body.strip()[:80]!r}, not {check.response.value!r}"
    return None


async def _command(check: HealthCheck, execution: Execution | None) -> str | None:
    if execution is None:
        return UNSUPPORTED
    shown = " ".join(check.exec)
    try:
        with trio.fail_after(check.timeout):
            result = await execution.run_command(check.exec)
    except ExecutionRefused:
        return UNSUPPORTED
    except trio.TooSlowError:
        return f"`{shown}` did not finish within {check.timeout:g} s"
    except DmsError as exc:
        return f"`{shown}` could not run: {exc}"
    output = result.output.strip()
    if result.exit_code != 0:
        said = f": {output[-200:]}" if output else ""
        return f"`{shown}` exited with code {result.exit_code}{said}"
    if check.response is not None and output != check.response.value.strip():
        return f"`{shown}` printed {output[:80]!r}, not {check.response.value!r}"
    return None


async def _get(host: str, port: int, path: str) -> tuple[int, str]:
    """A minimal HTTP/1.0 GET: the status code and the body (at most 64 KiB)."""
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        request = f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
        await stream.send_all(request.encode())
        data = b""
        while len(data) < _MAX_BODY:
            chunk = await stream.receive_some(16384)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if (
        len(status_line) < 2
        or not status_line[0].startswith(b"HTTP/")
        or not status_line[1].isdigit()
    ):
        raise ValueError("not an HTTP response")
    return int(status_line[1]), body.decode(errors="replace")
