"""The interface between an actor system and the transports that carry its frames."""

from __future__ import annotations

import abc
from typing import Protocol

import trio

__all__ = ["Transport", "TransportHost"]


class TransportHost(Protocol):
    """The actor system, as a transport sees it."""

    @property
    def did(self) -> str: ...

    def receive_frame(self, frame: bytes, *, session_did: str | None) -> None:
        """Take one inbound frame. ``session_did`` is the DID the transport proved for the
        peer that sent it (``None`` if it proves none). Never blocks and never raises."""


class Transport(abc.ABC):
    """Moves frames between systems. Started by the system inside its own nursery."""

    @abc.abstractmethod
    async def run(self, host: TransportHost, *, task_status: trio.TaskStatus[None]) -> None:
        """Listen and serve until cancelled; call ``task_status.started()`` once listening."""

    @abc.abstractmethod
    def reaches(self, did: str) -> bool:
        """Whether this transport knows a way to ``did`` (a live session or an address)."""

    @abc.abstractmethod
    async def send(self, did: str, frame: bytes) -> None:
        """Deliver ``frame`` to the system ``did``; raise ``Unreachable`` if it cannot."""

    @abc.abstractmethod
    async def broadcast(self, frame: bytes, *, exclude: str | None = None) -> None:
        """Send ``frame`` to the neighbours that gossip should reach (all but ``exclude``)."""

    @property
    @abc.abstractmethod
    def addresses(self) -> list[str]:
        """The addresses this transport listens on (multiaddr strings)."""
