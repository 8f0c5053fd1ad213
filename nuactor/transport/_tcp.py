"""TCP: dial a multiaddr, listen on one, and name what a listener is bound to.

The secure session runs directly on the resulting ``trio.SocketStream`` (TCP_NODELAY is on, as
trio sets it). ``/dns4`` and ``/dns6`` resolve to that address family only; ``/dns`` lets trio
try every address (happy eyeballs).
"""

from __future__ import annotations

import socket
from typing import Final

import trio

from ._multiaddr import Multiaddr, StreamKind

__all__ = ["bound_address", "open_listeners", "open_tcp"]

_FAMILIES: Final = {"dns4": socket.AF_INET, "dns6": socket.AF_INET6}


async def _resolve(addr: Multiaddr) -> list[str]:
    """The IP addresses of a ``/dns4`` or ``/dns6`` name, in resolver order."""
    infos = await trio.socket.getaddrinfo(
        addr.host, addr.port, family=_FAMILIES[addr.host_kind], type=socket.SOCK_STREAM
    )
    hosts = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not hosts:  # pragma: no cover - getaddrinfo raises rather than return nothing
        raise OSError(f"{addr.host} has no {addr.host_kind} address")
    return hosts


async def open_tcp(addr: Multiaddr) -> trio.SocketStream:
    """Open a TCP connection to ``addr`` (any stream kind: ws runs over it). Raises OSError."""
    if addr.host_kind not in _FAMILIES:
        return await trio.open_tcp_stream(addr.host, addr.port)
    failure: OSError | None = None
    for host in await _resolve(addr):
        try:
            return await trio.open_tcp_stream(host, addr.port)
        except OSError as exc:
            failure = exc
    assert failure is not None
    raise failure


async def open_listeners(addr: Multiaddr) -> list[trio.SocketListener]:
    """Bind and listen on ``addr`` (port 0: the system picks one). Raises OSError."""
    if addr.host_kind in _FAMILIES:
        listeners: list[trio.SocketListener] = []
        try:
            for host in await _resolve(addr):
                listeners += await trio.open_tcp_listeners(addr.port, host=host)
        except BaseException:
            for listener in listeners:
                await trio.aclose_forcefully(listener)
            raise
        return listeners
    return await trio.open_tcp_listeners(addr.port, host=addr.host)


def bound_address(listener: trio.SocketListener, stream: StreamKind) -> Multiaddr:
    """The address a listener is actually bound to (its real port, if it asked for 0)."""
    sockname = listener.socket.getsockname()
    host, port = str(sockname[0]), int(sockname[1])
    if listener.socket.family == socket.AF_INET6:
        return Multiaddr("ip6", host.split("%", 1)[0], port, stream)
    return Multiaddr("ip4", host, port, stream)
