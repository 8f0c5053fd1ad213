"""One live secure session to a peer, and the three tasks that serve it.

- The **reader** hands envelope and gossip frames to the system (``host.receive_frame``), answers
  pings, and passes other control messages to the network. ``receive_frame`` cannot push back,
  so the reader yields to the scheduler every :data:`_YIELD_EVERY` frames: the actors those
  frames feed then drain their mailboxes before more arrive (a mailbox of 256 takes 32 readers
  flooding it at once). Yielding after every frame costs ~10 % of pipelined throughput.
- The **writer** is the only task that writes: queued control messages first, then, while this
  link is its peer's *primary*, the peer's outbox, batching whatever is waiting (up to one Noise
  message) into one BATCH frame. It never blocks anyone else: senders only touch the outbox.
- The **pinger** measures the round-trip time every ``ping_interval`` and closes a link on which
  neither a pong nor anything else arrived for ``ping_timeout``.

Retiring a duplicate (see ``_network``): the side retiring a link stops writing it, sends
``retire`` as its last message and keeps reading until the peer's own ``retire`` arrives; a side
that receives ``retire`` first answers in kind and closes. Frames already in flight are read.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, deque
from collections.abc import Callable
from typing import Final, final

import trio

from .._frames import GOSSIP
from ._base import TransportHost
from ._control import (
    ControlMessage,
    Ping,
    Pong,
    Retire,
    decode_control,
    encode_control,
)
from ._errors import PingTimeout, SessionClosed, TransportError
from ._multiaddr import Multiaddr
from ._outbox import Outbox
from ._peers import Peer
from ._secure import SecureSession
from ._wire import BATCH, BATCH_FRAME_OVERHEAD, CONTROL, MAX_BATCH_SIZE, encode_batch, split_batch

__all__ = ["Link", "LinkTimings"]

log = logging.getLogger("nuactor.transport.network")

_MAX_CONTROL_QUEUE: Final = 64
_YIELD_EVERY: Final = 8
_RETIRE_FRAME: Final = encode_control(Retire())


@final
class LinkTimings:
    """The link's timers, from the network's configuration."""

    __slots__ = ("ping_interval", "ping_timeout", "retire_timeout")

    def __init__(self, *, ping_interval: float, ping_timeout: float, retire_timeout: float) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.retire_timeout = retire_timeout


@final
class _PendingPing:
    __slots__ = ("done", "rtt", "start")

    def __init__(self) -> None:
        self.start = trio.current_time()
        self.done = trio.Event()
        self.rtt: float | None = None


@final
class Link:
    """A session to ``peer``: made by the network once the handshake succeeded."""

    __slots__ = (
        "_control",
        "_counters",
        "_host",
        "_on_control",
        "_pings",
        "_retired",
        "_scope",
        "_timings",
        "_wake",
        "address",
        "announced",
        "initiator_did",
        "last_received",
        "opened",
        "outbox",
        "peer",
        "peers_sent_at",
        "retire_sent",
        "retiring",
        "rtt",
        "session",
    )

    def __init__(
        self,
        session: SecureSession,
        peer: Peer,
        *,
        host: TransportHost,
        on_control: Callable[[Link, ControlMessage], None],
        counters: Counter[str],
        timings: LinkTimings,
        address: Multiaddr | None = None,
    ) -> None:
        self.session = session
        self.peer = peer
        self.address = address
        #: The DID of the side that dialled (decides nothing by itself; kept for inspection).
        self.initiator_did = session.local_did if session.initiator else session.remote_did
        self._host = host
        self._on_control = on_control
        self._counters = counters
        self._timings = timings
        self._control: deque[bytes] = deque()
        self._wake = trio.Event()
        self._scope = trio.CancelScope()
        self._pings: dict[int, _PendingPing] = {}
        self._retired = trio.Event()  # the peer sent ``retire``
        #: The peer's outbox while this link is its primary (set by ``Peer.elect``).
        self.outbox: Outbox | None = None
        self.retiring = False
        self.retire_sent = False
        self.rtt: float | None = None
        #: When a ``peers`` answer last went out on this link (``getpeers`` is rate-limited).
        self.peers_sent_at = -float("inf")
        #: Whether this peer's arrival was announced to the other neighbours (once per link).
        self.announced = False
        self.opened = self.last_received = trio.current_time()

    @property
    def did(self) -> str:
        return self.session.remote_did

    @property
    def closed(self) -> bool:
        return self._scope.cancel_called

    def __repr__(self) -> str:
        state = "retiring" if self.retiring else "closed" if self.closed else "open"
        return f"<Link to {self.did} initiated by {self.initiator_did} {state}>"

    # --- called by the network ------------------------------------------------------------

    def wake(self) -> None:
        """Tell the writer there may be something to write."""
        self._wake.set()

    def send_control(self, message: ControlMessage) -> bool:
        """Queue a control message ahead of the outbox; ``False`` (dropped) if too many wait."""
        if len(self._control) >= _MAX_CONTROL_QUEUE or self.retire_sent:
            self._counters["control_dropped"] += 1
            return False
        self._control.append(encode_control(message))
        self._wake.set()
        return True

    def retire(self) -> None:
        """Stop using this link for the outbox; say ``retire`` and close once the peer has too."""
        if self.retiring:
            return
        self.retiring = True
        self.peer.elect()
        self._wake.set()

    def close(self) -> None:
        """Stop the link's tasks; the network then closes the session."""
        self._scope.cancel()
        for pending in self._pings.values():
            pending.done.set()
        if self.peer.primary is self:
            self.peer.elect()

    async def ping(self, timeout: float) -> float:
        """Round-trip time of one ping, in seconds; :class:`PingTimeout` if no pong in time."""
        nonce = random.getrandbits(63)
        pending = self._pings[nonce] = _PendingPing()
        try:
            if self.closed or not self.send_control(Ping(nonce)):
                raise SessionClosed("the session to the peer is closed or congested")
            with trio.move_on_after(timeout):
                await pending.done.wait()
            if pending.rtt is not None:
                return pending.rtt
            if self.closed:
                raise SessionClosed("the session closed before the pong arrived")
            raise PingTimeout(f"no pong from {self.did} within {timeout} s")
        finally:
            self._pings.pop(nonce, None)

    # --- the tasks --------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the link until it closes, fails, or is retired."""
        with self._scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write)
                nursery.start_soon(self._keep_alive)
                await self._read()
                nursery.cancel_scope.cancel()
        self.close()

    async def _read(self) -> None:
        receive = self.session.receive_message
        receive_frame = self._host.receive_frame
        checkpoint = trio.lowlevel.checkpoint
        did = self.did
        peer = self.peer
        counters = self._counters
        handed = 0  # frames handed to the system since the last yield
        try:
            while True:
                message = await receive()
                peer.last_seen = self.last_received = trio.current_time()
                kind = message[0] if message else BATCH + 1
                if kind <= GOSSIP:
                    receive_frame(message, session_did=did)
                    handed += 1
                elif kind == BATCH:
                    for frame in split_batch(message):
                        if frame[0] <= GOSSIP:
                            receive_frame(frame, session_did=did)
                            handed += 1
                            if handed >= _YIELD_EVERY:
                                handed = 0
                                await checkpoint()
                        else:
                            self._receive_other(frame)
                else:
                    self._receive_other(message)
                if handed >= _YIELD_EVERY:
                    handed = 0
                    await checkpoint()
        except SessionClosed as exc:
            counters["sessions_ended"] += 1
            log.debug("session with %s ended: %s", did, exc)
        except TransportError as exc:
            counters["sessions_failed"] += 1
            log.info("session with %s failed: %s", did, exc)

    def _receive_other(self, frame: bytes) -> None:
        if frame[0] != CONTROL:
            self._counters["unknown_frames"] += 1
            return
        message = decode_control(frame)
        if message is None:
            self._counters["control_malformed"] += 1
        elif isinstance(message, Ping):
            self.send_control(Pong(message.n))
        elif isinstance(message, Pong):
            pending = self._pings.get(message.n)
            if pending is not None:
                pending.rtt = self.rtt = self.peer.rtt = trio.current_time() - pending.start
                pending.done.set()
        elif isinstance(message, Retire):
            self._retired.set()
            if self.retire_sent:
                self.close()
            else:
                self.retire()
        else:
            self._on_control(self, message)

    async def _write(self) -> None:
        send = self.session.send_message
        control = self._control
        try:
            while True:
                if control:
                    await send(control.popleft())
                    continue
                if self.retiring:
                    await self._finish_retiring()
                    return
                outbox = self.outbox
                if outbox is not None and outbox:
                    frames = outbox.take(MAX_BATCH_SIZE, BATCH_FRAME_OVERHEAD)
                    await send(frames[0] if len(frames) == 1 else encode_batch(frames))
                    continue
                self._wake = trio.Event()
                await self._wake.wait()
        except TransportError as exc:
            self._counters["sessions_failed"] += 1
            log.info("writing to %s failed: %s", self.did, exc)
            self.close()

    async def _finish_retiring(self) -> None:
        await self.session.send_message(_RETIRE_FRAME)
        self.retire_sent = True
        with trio.move_on_after(self._timings.retire_timeout):
            await self._retired.wait()
        self._counters["sessions_retired"] += 1
        self.close()

    async def _keep_alive(self) -> None:
        timings = self._timings
        while True:
            await trio.sleep(timings.ping_interval * random.uniform(0.9, 1.1))
            if self.retiring:
                return
            try:
                await self.ping(timings.ping_timeout)
            except PingTimeout:
                if trio.current_time() - self.last_received >= timings.ping_timeout:
                    self._counters["ping_timeouts"] += 1
                    log.info(
                        "no sign of life from %s for %s s: closing", self.did, timings.ping_timeout
                    )
                    self.close()
                    return
            except SessionClosed:
                return
