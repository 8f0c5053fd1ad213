"""Multiaddr strings for the network transports: parse strictly, format canonically.

Accepted forms (and nothing else)::

    /ip4/<a.b.c.d>/tcp/<port>[/ws][/p2p/<did:key>]
    /ip6/<address>/tcp/<port>[/ws][/p2p/<did:key>]
    /dns/<name>/tcp/<port>[/ws][/p2p/<did:key>]       (also /dns4, /dns6: resolve to that family)

``/ws`` selects the WebSocket transport (else plain TCP). The optional ``/p2p/<did>`` pins the
identity expected at the address: a dial refuses any other peer (``PeerMismatch``). Bad input
raises :class:`~nuactor.transport.InvalidAddress` saying what is wrong.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final, Literal, final

from .._identity import public_key_from_did
from ..errors import InvalidDid
from ._errors import InvalidAddress

__all__ = ["HOST_KINDS", "HostKind", "Multiaddr", "StreamKind", "parse_multiaddr"]

HostKind = Literal["ip4", "ip6", "dns", "dns4", "dns6"]
StreamKind = Literal["tcp", "ws"]
HOST_KINDS: Final[tuple[HostKind, ...]] = ("ip4", "ip6", "dns", "dns4", "dns6")

_MAX_LEN: Final = 512
_PORT: Final = re.compile(r"0|[1-9][0-9]{0,4}")
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidAddress(f"a TCP port is an integer from 0 to 65535, got {port!r}")
    return port


def _normal_host(kind: str, host: str) -> str:
    """The canonical spelling of ``host`` for ``kind``, or :class:`InvalidAddress`."""
    if not host.isascii():
        raise InvalidAddress(f"/{kind} host must be ASCII, got {_shown(host)}")
    if kind == "ip4":
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError as exc:
            raise InvalidAddress(
                f"/ip4 needs a dotted-quad IPv4 address, got {_shown(host)}"
            ) from exc
        return str(address)
    if kind == "ip6":
        if "%" in host:
            raise InvalidAddress(f"/ip6 addresses with a zone are not supported: {_shown(host)}")
        try:
            address6 = ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise InvalidAddress(f"/ip6 needs an IPv6 address, got {_shown(host)}") from exc
        return str(address6)
    name = host.lower()
    if not 0 < len(name) <= 253:
        raise InvalidAddress(
            f"/{kind} needs a host name of 1 to 253 characters, got {_shown(host)}"
        )
    for label in name.split("."):
        if not _LABEL.fullmatch(label):
            raise InvalidAddress(
                f"/{kind} host name {_shown(host)} has an invalid label {_shown(label)} "
                "(letters, digits and inner hyphens, 1 to 63 characters)"
            )
    return name


@final
@dataclass(frozen=True, slots=True)
class Multiaddr:
    """A parsed network address. Construct with :func:`parse_multiaddr` or directly (checked).

    ``str(addr)`` is the canonical string; ``parse_multiaddr(str(addr)) == addr``.
    """

    host_kind: HostKind
    host: str
    port: int
    stream: StreamKind = "tcp"
    did: str | None = None

    def __post_init__(self) -> None:
        if self.host_kind not in HOST_KINDS:
            raise InvalidAddress(f"unknown host kind {self.host_kind!r}")
        if not isinstance(self.host, str):
            raise InvalidAddress(f"a host is a string, got {type(self.host).__name__}")
        object.__setattr__(self, "host", _normal_host(self.host_kind, self.host))
        _check_port(self.port)
        if self.stream not in ("tcp", "ws"):
            raise InvalidAddress(f"unknown stream kind {self.stream!r} (tcp or ws)")
        if self.did is not None:
            try:
                public_key_from_did(self.did)
            except InvalidDid as exc:
                raise InvalidAddress(f"/p2p needs a did:key: {exc}") from exc

    def __str__(self) -> str:
        text = f"/{self.host_kind}/{self.host}/tcp/{self.port}"
        if self.stream == "ws":
            text += "/ws"
        if self.did is not None:
            text += f"/p2p/{self.did}"
        return text

    @property
    def dialable(self) -> bool:
        """Whether one can dial it: a real port and a host that is not the unspecified address."""
        return self.port != 0 and self.host not in ("0.0.0.0", "::")

    def with_did(self, did: str | None) -> Multiaddr:
        """The same address pinned to ``did`` (or unpinned, with ``None``)."""
        return Multiaddr(self.host_kind, self.host, self.port, self.stream, did)


def parse_multiaddr(text: str) -> Multiaddr:
    """Parse a multiaddr string (see the module docstring); raise :class:`InvalidAddress`."""
    if not isinstance(text, str):
        raise InvalidAddress(f"a multiaddr is a string, got {type(text).__name__}")
    if len(text) > _MAX_LEN:
        raise InvalidAddress(f"a multiaddr is at most {_MAX_LEN} characters, got {len(text)}")
    if not text.startswith("/"):
        raise InvalidAddress(f"a multiaddr starts with '/': {_shown(text)}")
    parts = text[1:].split("/")
    if any(not part for part in parts):
        raise InvalidAddress(f"empty component in multiaddr {_shown(text)}")
    if len(parts) < 4:
        raise InvalidAddress(
            f"incomplete multiaddr {_shown(text)}: expected /<ip4|ip6|dns|dns4|dns6>/<host>/tcp/<port>"
        )
    kind, host, proto, port_text, *rest = parts
    if kind not in HOST_KINDS:
        raise InvalidAddress(
            f"unknown protocol {_shown(kind)} in {_shown(text)}: expected ip4, ip6, dns, dns4 or dns6"
        )
    if proto != "tcp":
        raise InvalidAddress(
            f"expected 'tcp' after the host in {_shown(text)}, got {_shown(proto)}"
        )
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise InvalidAddress(
            f"invalid TCP port {_shown(port_text)} in {_shown(text)} (0 to 65535, no leading zeros)"
        )
    stream: StreamKind = "tcp"
    if rest and rest[0] == "ws":
        stream = "ws"
        rest = rest[1:]
    did: str | None = None
    if rest:
        if rest[0] != "p2p":
            raise InvalidAddress(
                f"unexpected component {_shown(rest[0])} in {_shown(text)}: only /ws and /p2p/<did> "
                "may follow the port"
            )
        if len(rest) != 2:
            raise InvalidAddress(f"/p2p takes exactly one did:key in {_shown(text)}")
        did = rest[1]
    return Multiaddr(kind, host, int(port_text), stream, did)
