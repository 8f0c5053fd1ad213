"""The network transport: TCP and WebSocket listeners, a peer table, dialling, gossip fan-out.

:class:`Network` is the :class:`~nuactor.transport.Transport` a node gives its actor system. It
listens on any number of ``tcp`` and ``ws`` multiaddrs, runs a :class:`SecureSession` on every
connection, and keeps one :class:`~nuactor.transport._link.Link` per live session. Everything it
starts lives in the nursery of :meth:`Network.run`, which the system runs in its own nursery.

Sending to a DID with no live session dials its known addresses (pinned to that DID) with capped
exponential back-off; the frame is queued in the peer's bounded outbox once a session exists.

Duplicate sessions (both sides dialled at once, or a peer reconnected before the old session was
noticed dead): the side with the lower DID decides. It keeps its newest session and retires the
others; the other side always writes to its newest session not being retired. A retired session
is drained, not dropped (``retire`` handshake, see ``_link``), and the outbox belongs to the peer,
not to a session, so no frame is lost to the switch.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Final, final

import trio

from .._identity import Identity
from ..errors import Unreachable
from ._base import Transport, TransportHost
from ._control import MAX_ADDRESSES, MAX_EXCHANGED_PEERS, ControlMessage, GetPeers, Hello, Peers
from ._errors import (
    DialError,
    InvalidAddress,
    MessageTooLarge,
    PeerMismatch,
    SessionClosed,
    TransportError,
)
from ._link import Link, LinkTimings
from ._multiaddr import Multiaddr, StreamKind, parse_multiaddr
from ._peers import Peer, PeerRecord, PeerTable, backoff_delay
from ._secure import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MESSAGE_TIMEOUT,
    SecureSession,
)
from ._tcp import bound_address, open_listeners, open_tcp
from ._ws import ws_accept, ws_connect

__all__ = ["Network", "NetworkConfig"]

log = logging.getLogger("nuactor.transport.network")

_MAX_LINKS_PER_PEER: Final = 4
"""Sessions kept with one DID at most (a misbehaving peer's extra ones are closed)."""
_PEERS_REPLY_INTERVAL: Final = 1.0
"""Answer ``getpeers`` on a session at most this often (seconds)."""


@final
@dataclass(frozen=True, slots=True)
class NetworkConfig:
    """How a :class:`Network` listens, whom it knows, and its limits (times in seconds).

    Nothing here depends on the node's identity, so it can come straight from a config file.
    """

    #: Multiaddrs to listen on (``/tcp/0``: any free port; see :attr:`Network.addresses`).
    listen: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
    #: Addresses to tell peers (``hello``); default: the bound listen addresses, minus
    #: unspecified hosts (``0.0.0.0``, ``::``), which nobody can dial.
    advertise: tuple[str, ...] | None = None
    #: Peers to connect to at start and to keep reconnecting to; ``/p2p/<did>`` pins the DID.
    bootstrap: tuple[str, ...] = ()
    #: Neighbours each gossip frame is sent to.
    fanout: int = 6
    #: Sessions the node tries to keep, dialling peers it learned from peer exchange.
    target_peers: int = 8
    max_peers: int = 1024
    max_sessions: int = 512
    #: Inbound connections still in their handshake; beyond it, new ones are closed at once.
    max_pending_handshakes: int = 64
    #: Frames queued per peer.
    queue_size: int = 1024
    #: Longest a ``send`` waits, for a session or for room in the peer's queue.
    send_timeout: float = 5.0
    #: TCP connect plus WebSocket upgrade, per address.
    dial_timeout: float = 10.0
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    message_timeout: float | None = DEFAULT_MESSAGE_TIMEOUT
    #: Largest frame sent or received (the session's message limit).
    max_frame_size: int = DEFAULT_MAX_MESSAGE_SIZE
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    #: Failed dial rounds after which a dropped peer (not a bootstrap one) is no longer redialled.
    max_redials: int = 10
    ping_interval: float = 15.0
    ping_timeout: float = 10.0
    #: How often a node short of ``target_peers`` asks a neighbour for more peers.
    exchange_interval: float = 30.0
    #: How long a retired duplicate session waits for the peer's ``retire``.
    retire_timeout: float = 5.0

    def __post_init__(self) -> None:
        for text in self.listen:
            if parse_multiaddr(text).did is not None:
                raise InvalidAddress(f"a listen address takes no /p2p: {text}")
        for text in (*(self.advertise or ()), *self.bootstrap):
            if not parse_multiaddr(text).dialable:
                raise InvalidAddress(f"cannot dial {text}: port 0 or an unspecified host")
        for name in ("fanout", "target_peers", "max_peers", "max_sessions"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in ("max_pending_handshakes", "queue_size", "max_frame_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        for name in (
            "send_timeout",
            "dial_timeout",
            "handshake_timeout",
            "backoff_initial",
            "backoff_max",
            "ping_interval",
            "ping_timeout",
            "exchange_interval",
            "retire_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


@final
class _SelfConnection(DialError):
    """The address led back to this very node."""


@final
class _Bootstrap:
    """An unpinned bootstrap address: dialled with back-off until it teaches its DID."""

    __slots__ = ("address", "dialing", "failures", "next_dial")

    def __init__(self, address: Multiaddr) -> None:
        self.address = address
        self.failures = 0
        self.next_dial = -float("inf")
        self.dialing = False


@final
class Network(Transport):
    """TCP and WebSocket transport with a peer table, for an actor system of ``identity``.

    >>> network = Network(identity, NetworkConfig(listen=("/ip4/0.0.0.0/tcp/9000",)))
    >>> async with ActorSystem(identity, trust, transports=[network]) as system: ...

    ``counters`` counts what happened (sessions, failures, drops) for inspection and tests.
    """

    def __init__(self, identity: Identity, config: NetworkConfig | None = None) -> None:
        self.identity = identity
        self.config = config = config if config is not None else NetworkConfig()
        self.counters: Counter[str] = Counter()
        self._did = identity.did
        self._listen = [parse_multiaddr(text) for text in config.listen]
        self._table = PeerTable(max_peers=config.max_peers, queue_size=config.queue_size)
        self._connected: dict[str, Peer] = {}
        self._bootstrap: dict[Multiaddr, _Bootstrap] = {}
        self._addresses: list[Multiaddr] = []
        self._advertised: tuple[Multiaddr, ...] = ()
        self._host: TransportHost | None = None
        self._nursery: trio.Nursery | None = None
        self._handshakes = trio.Semaphore(config.max_pending_handshakes)
        self._links = 0
        self._wake_maintainer = trio.Event()
        self._timings = LinkTimings(
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            retire_timeout=config.retire_timeout,
        )

    # --- Transport --------------------------------------------------------------------------

    @property
    def did(self) -> str:
        return self._did

    @property
    def addresses(self) -> list[str]:
        """The bound listen addresses (real ports), as multiaddr strings without ``/p2p``."""
        return [str(address) for address in self._addresses]

    async def run(self, host: TransportHost, *, task_status: trio.TaskStatus[None]) -> None:
        if host.did != self._did:
            raise ValueError(f"this network is {self._did}'s, not {host.did}'s")
        if self._host is not None:
            raise RuntimeError("this network is already running")
        self._host = host
        listeners: list[tuple[trio.SocketListener, StreamKind]] = []
        try:
            listeners = await self._open_listeners()
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for listener, kind in listeners:
                    nursery.start_soon(
                        partial(
                            trio.serve_listeners,
                            partial(self._inbound, kind=kind),
                            [listener],
                            handler_nursery=nursery,
                        )
                    )
                self._seed_bootstrap()
                nursery.start_soon(self._maintain)
                nursery.start_soon(self._exchange)
                task_status.started()
        finally:
            for listener, _ in listeners:  # closed by serve_listeners, unless it never ran
                await trio.aclose_forcefully(listener)
            self._host = None
            self._nursery = None
            self._addresses = []
            self._connected.clear()

    def reaches(self, did: str) -> bool:
        if did in self._connected:
            return True
        peer = self._table.get(did)
        return peer is not None and did != self._did and (peer.connected or peer.dialable)

    async def send(self, did: str, frame: bytes) -> None:
        """Queue ``frame`` for ``did``, dialling it first if there is no session.

        Returns as soon as the frame is queued (without yielding if there was room at once,
        so a loop of sends fills batches). Waits at most ``send_timeout`` for a session and for
        room in the peer's queue; raises :class:`~nuactor.errors.Unreachable` if there is none.
        """
        if len(frame) > self.config.max_frame_size:
            raise MessageTooLarge(
                f"a frame of {len(frame)} bytes exceeds the limit of {self.config.max_frame_size}"
            )
        peer = self._connected.get(did)
        if peer is not None and peer.outbox.put_nowait(frame):
            await trio.lowlevel.checkpoint_if_cancelled()
            primary = peer.primary
            if primary is not None:
                primary.wake()
            return
        peer = self._table.get(did)
        if peer is None or did == self._did:
            raise Unreachable(f"{did} is not a known peer of this node")
        deadline = trio.current_time() + self.config.send_timeout
        await self._live_link(peer, deadline)
        if not await peer.outbox.put(frame, deadline):
            self.counters["send_queue_full"] += 1
            raise Unreachable(
                f"the queue to {did} stayed full for {self.config.send_timeout} s (a slow peer)"
            )
        primary = peer.primary
        if primary is not None:
            primary.wake()

    async def broadcast(self, frame: bytes, *, exclude: str | None = None) -> None:
        """Queue ``frame`` for up to ``fanout`` random connected neighbours (not ``exclude``).

        Never waits: a neighbour whose queue is full misses this frame (``gossip_dropped``);
        gossip reaches it through others.
        """
        if len(frame) > self.config.max_frame_size:
            raise MessageTooLarge(
                f"a frame of {len(frame)} bytes exceeds the limit of {self.config.max_frame_size}"
            )
        await trio.lowlevel.checkpoint_if_cancelled()
        neighbours = [peer for did, peer in self._connected.items() if did != exclude]
        if len(neighbours) > self.config.fanout:
            neighbours = random.sample(neighbours, self.config.fanout)
        for peer in neighbours:
            if peer.outbox.put_nowait(frame):
                if peer.primary is not None:
                    peer.primary.wake()
            else:
                self.counters["gossip_dropped"] += 1

    # --- peers: the public API ---------------------------------------------------------------

    def peers(self) -> list[PeerRecord]:
        """A snapshot of the peer table."""
        return [peer.record() for peer in self._table]

    async def connect(self, address: str) -> str:
        """Open a session to ``address`` (pinned if it ends in ``/p2p/<did>``) and return the
        DID the peer proved. The address is remembered for redialling.

        Raises :class:`InvalidAddress`, :class:`PeerMismatch` (someone else answered),
        :class:`HandshakeError`, or :class:`DialError` (refused, unreachable, timed out).
        """
        target = parse_multiaddr(address)
        if not target.dialable:
            raise InvalidAddress(f"cannot dial {address}: port 0 or an unspecified host")
        if target.did is not None:
            peer = self._table.get(target.did)
            if peer is not None and peer.links:
                peer.add_addresses((target,), confirmed=True)
                return target.did
        link = await self._open(target.with_did(None), target.did)
        return link.did

    async def ping(self, did: str, timeout: float | None = None) -> float:
        """Round-trip time to ``did`` in seconds (dialling it if needed).

        Raises :class:`~nuactor.errors.Unreachable` or :class:`PingTimeout`.
        """
        peer = self._table.get(did)
        if peer is None or did == self._did:
            raise Unreachable(f"{did} is not a known peer of this node")
        link = await self._live_link(peer, trio.current_time() + self.config.send_timeout)
        try:
            return await link.ping(self.config.ping_timeout if timeout is None else timeout)
        except SessionClosed as exc:
            raise Unreachable(f"the session to {did} closed: {exc}") from exc

    # --- listening --------------------------------------------------------------------------

    async def _open_listeners(self) -> list[tuple[trio.SocketListener, StreamKind]]:
        opened: list[tuple[trio.SocketListener, StreamKind]] = []
        try:
            for address in self._listen:
                for listener in await open_listeners(address):
                    opened.append((listener, address.stream))
        except BaseException:
            for listener, _ in opened:
                await trio.aclose_forcefully(listener)
            raise
        self._addresses = [bound_address(listener, kind) for listener, kind in opened]
        if self.config.advertise is not None:
            self._advertised = tuple(parse_multiaddr(a) for a in self.config.advertise)
        else:
            self._advertised = tuple(a for a in self._addresses if a.dialable)
        return opened

    async def _inbound(self, stream: trio.SocketStream, kind: StreamKind) -> None:
        if self._links >= self.config.max_sessions:
            self.counters["inbound_refused"] += 1
            await trio.aclose_forcefully(stream)
            return
        try:
            self._handshakes.acquire_nowait()
        except trio.WouldBlock:
            self.counters["inbound_refused"] += 1
            await trio.aclose_forcefully(stream)
            return
        await self._connection(None, None, stream, kind, handshake_slot=self._handshakes)

    # --- one connection, from TCP to closed ------------------------------------------------------

    async def _open(self, address: Multiaddr, expected_did: str | None) -> Link:
        """Dial ``address`` and return the attached link (errors as :meth:`connect`)."""
        nursery = self._nursery
        if nursery is None:
            raise DialError("the network is not running")
        link: Link = await nursery.start(
            partial(self._connection, address, expected_did, None, address.stream)
        )
        return link

    async def _connection(
        self,
        address: Multiaddr | None,
        expected_did: str | None,
        inbound: trio.SocketStream | None,
        kind: StreamKind,
        *,
        handshake_slot: trio.Semaphore | None = None,
        task_status: trio.TaskStatus[Link] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Establish a session (dial ``address`` or accept ``inbound``), then serve its link.

        A dial's failure is raised to whoever started it; an inbound one is only counted. Once
        serving, nothing is raised: the link ends, and that is all.
        """
        failure: Exception | None = None
        async with trio.open_nursery() as nursery:  # holds trio-websocket's reader, if any
            session: SecureSession | None = None
            try:
                session = await self._establish(nursery, address, expected_did, inbound, kind)
            except Exception as exc:
                failure = exc
            finally:
                if handshake_slot is not None:
                    handshake_slot.release()
            if session is not None:
                try:
                    link = self._attach(session, address)
                except DialError as exc:
                    failure = exc
                    await trio.aclose_forcefully(session)
                else:
                    task_status.started(link)
                    try:
                        await link.run()
                    except Exception:  # a bug must end this link, not the network
                        log.exception("the link to %s failed unexpectedly", link.did)
                        self.counters["link_errors"] += 1
                    finally:
                        self._detach(link)
                        await trio.aclose_forcefully(session)
            nursery.cancel_scope.cancel()
        if failure is None:
            return
        if inbound is not None:
            self.counters["inbound_failed"] += 1
            log.info("an inbound %s connection failed: %s", kind, failure)
            return
        self.counters["dial_failed"] += 1
        if isinstance(failure, TransportError):
            raise failure
        raise DialError(f"cannot connect to {address}: {failure!r}") from failure

    async def _establish(
        self,
        nursery: trio.Nursery,
        address: Multiaddr | None,
        expected_did: str | None,
        inbound: trio.SocketStream | None,
        kind: StreamKind,
    ) -> SecureSession:
        config = self.config
        stream: trio.abc.Stream | None = inbound
        try:
            if inbound is None:
                assert address is not None
                with trio.fail_after(config.dial_timeout):
                    tcp = await open_tcp(address)
                    stream = tcp
                    if kind == "ws":
                        stream = await ws_connect(nursery, tcp, address.host)
                return await SecureSession.initiate(
                    stream,
                    self.identity,
                    expected_did=expected_did,
                    timeout=config.handshake_timeout,
                    max_message_size=config.max_frame_size,
                    message_timeout=config.message_timeout,
                )
            accepted: trio.abc.Stream = inbound
            if kind == "ws":
                with trio.fail_after(config.handshake_timeout):
                    stream = accepted = await ws_accept(nursery, inbound)
            return await SecureSession.accept(
                accepted,
                self.identity,
                timeout=config.handshake_timeout,
                max_message_size=config.max_frame_size,
                message_timeout=config.message_timeout,
            )
        except BaseException:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise

    def _attach(self, session: SecureSession, address: Multiaddr | None) -> Link:
        """Register a new session's link with its peer, resolving duplicates."""
        host = self._host
        did = session.remote_did
        if did == self._did:
            raise _SelfConnection("the address leads back to this node")
        if host is None:
            raise DialError("the network is not running")
        if self._links >= self.config.max_sessions:
            raise DialError(f"already {self._links} sessions, the limit")
        peer = self._table.ensure(did)
        if peer is None:
            raise DialError("the peer table is full")
        link = Link(
            session,
            peer,
            host=host,
            on_control=self._on_control,
            counters=self.counters,
            timings=self._timings,
            address=address,
        )
        peer.links.append(link)
        self._links += 1
        self._connected[did] = peer
        if address is not None:
            peer.add_addresses((address,), confirmed=True)
        peer.sticky = True
        peer.failures = 0
        peer.next_dial = -float("inf")
        live = [other for other in peer.links if not other.retiring]
        if self._did < did:  # this side decides: keep the newest, retire the rest
            for other in live[:-1]:
                other.retire()
        elif len(live) > _MAX_LINKS_PER_PEER:
            live[0].close()
            self.counters["sessions_over_limit"] += 1
        peer.elect()
        link.send_control(Hello(self._advertised))
        link.send_control(Peers(self._sample_peers(exclude=did)))
        self.counters["sessions_opened"] += 1
        peer.notify()
        self._wake_maintainer.set()
        return link

    def _detach(self, link: Link) -> None:
        peer = link.peer
        link.close()
        if link in peer.links:
            peer.links.remove(link)
            self._links -= 1
        peer.elect()
        if not peer.links:
            self._connected.pop(peer.did, None)
            if peer.dialable and (peer.bootstrap or peer.sticky):
                delay = backoff_delay(1, self.config.backoff_initial, self.config.backoff_max)
                peer.next_dial = max(peer.next_dial, trio.current_time() + delay)
            else:
                self.counters["frames_dropped"] += peer.outbox.clear()
        peer.notify()
        self._wake_maintainer.set()

    # --- control messages -------------------------------------------------------------------

    def _on_control(self, link: Link, message: ControlMessage) -> None:
        if isinstance(message, Hello):
            link.peer.add_addresses(message.addrs, confirmed=False)
            if not link.announced:
                link.announced = True
                self._announce(link)
        elif isinstance(message, Peers):
            learned = False
            for did, addresses in message.peers:
                if did in (self._did, link.did):
                    continue
                peer = self._table.ensure(did)
                if peer is not None:
                    peer.add_addresses(addresses, confirmed=False)
                    learned = True
            if learned:
                self._wake_maintainer.set()
        elif isinstance(message, GetPeers):
            now = trio.current_time()
            if now - link.peers_sent_at >= _PEERS_REPLY_INTERVAL:
                link.peers_sent_at = now
                link.send_control(Peers(self._sample_peers(exclude=link.did)))

    def _announce(self, link: Link) -> None:
        """Tell the other neighbours about a peer that just said hello, so they learn it now
        rather than at their next exchange (one small message per neighbour per new session)."""
        addresses = tuple(link.peer.addresses[:MAX_ADDRESSES])
        if not addresses:
            return
        news = Peers(((link.did, addresses),))
        for peer in self._connected.values():
            if peer.did != link.did and peer.primary is not None:
                peer.primary.send_control(news)

    def _sample_peers(self, *, exclude: str) -> tuple[tuple[str, tuple[Multiaddr, ...]], ...]:
        """Up to ``MAX_EXCHANGED_PEERS`` peers with addresses, connected ones first."""
        connected: list[Peer] = []
        others: list[Peer] = []
        for peer in self._table:
            if peer.did != exclude and peer.addresses:
                (connected if peer.links else others).append(peer)
        random.shuffle(connected)
        random.shuffle(others)
        chosen = (connected + others)[:MAX_EXCHANGED_PEERS]
        return tuple((peer.did, tuple(peer.addresses[:MAX_ADDRESSES])) for peer in chosen)

    # --- dialling ---------------------------------------------------------------------------

    async def _live_link(self, peer: Peer, deadline: float) -> Link:
        """A live link to ``peer``, dialling (with its back-off) until ``deadline``."""
        did = peer.did
        while True:
            if self._table.get(did) is not peer:
                raise Unreachable(f"{did} was dropped from the peer table")
            link = peer.primary or (peer.links[-1] if peer.links else None)
            if link is not None:
                return link
            now = trio.current_time()
            if now >= deadline:
                raise Unreachable(f"no session with {did} within {self.config.send_timeout} s")
            wake_at = deadline
            if peer.dialing is None:
                if not peer.addresses:
                    raise Unreachable(f"no session with {did} and no address to dial")
                if peer.next_dial > deadline:
                    raise Unreachable(
                        f"backing off from {did} after {peer.failures} failed dial round(s); "
                        f"next attempt in {peer.next_dial - now:.1f} s"
                    )
                if peer.next_dial <= now:
                    self._start_dial(peer)
                else:
                    wake_at = peer.next_dial
            with trio.move_on_at(wake_at):
                await peer.changed()

    def _start_dial(self, peer: Peer) -> None:
        nursery = self._nursery
        if nursery is None or peer.dialing is not None:
            return
        peer.dialing = trio.Event()
        nursery.start_soon(self._dial_peer, peer)

    async def _dial_peer(self, peer: Peer) -> None:
        """One round over the peer's addresses; on failure, back off and drop its queue."""
        done = peer.dialing
        try:
            for address in list(peer.addresses):
                if peer.links:
                    return
                try:
                    await self._open(address, peer.did)
                except PeerMismatch as exc:
                    peer.forget_address(address)
                    self.counters["dial_mismatch"] += 1
                    log.info("%s is no longer at %s: %s", peer.did, address, exc)
                except TransportError as exc:
                    log.debug("dialling %s at %s failed: %s", peer.did, address, exc)
                else:
                    return
            if peer.links:
                return
            peer.failures += 1
            peer.next_dial = trio.current_time() + backoff_delay(
                peer.failures, self.config.backoff_initial, self.config.backoff_max
            )
            self.counters["frames_dropped"] += peer.outbox.clear()
            if not (peer.sticky or peer.bootstrap) and peer.failures >= self.config.max_redials:
                self._table.forget(peer.did)  # hearsay that never answered
        finally:
            peer.dialing = None
            if done is not None:
                done.set()
            peer.notify()
            self._wake_maintainer.set()

    def _seed_bootstrap(self) -> None:
        for text in self.config.bootstrap:
            address = parse_multiaddr(text)
            if address.did is None:
                self._bootstrap[address] = _Bootstrap(address)
            elif address.did != self._did:
                peer = self._table.ensure(address.did)
                if peer is not None:
                    peer.bootstrap = True
                    peer.add_addresses((address,), confirmed=True)

    async def _dial_bootstrap(self, entry: _Bootstrap) -> None:
        """Dial an unpinned bootstrap address; once it proves a DID, it is a pinned peer."""
        try:
            link = await self._open(entry.address, None)
        except _SelfConnection:
            del self._bootstrap[entry.address]
        except TransportError as exc:
            entry.failures += 1
            entry.next_dial = trio.current_time() + backoff_delay(
                entry.failures, self.config.backoff_initial, self.config.backoff_max
            )
            log.debug("bootstrap %s failed: %s", entry.address, exc)
        else:
            link.peer.bootstrap = True
            self._bootstrap.pop(entry.address, None)
        finally:
            entry.dialing = False
            self._wake_maintainer.set()

    def _wants_dial(self, peer: Peer, spare: int) -> bool:
        if peer.links or peer.dialing is not None or not peer.addresses:
            return False
        if peer.bootstrap or (peer.sticky and peer.failures < self.config.max_redials):
            return True
        return spare > 0

    async def _maintain(self) -> None:
        """Dial bootstrap peers, redial dropped ones, and dial learned ones up to
        ``target_peers``, each when its back-off allows."""
        assert self._nursery is not None
        nursery = self._nursery
        while True:
            now = trio.current_time()
            wake_at = float("inf")
            for entry in list(self._bootstrap.values()):
                if entry.dialing:
                    continue
                if entry.next_dial <= now:
                    entry.dialing = True
                    nursery.start_soon(self._dial_bootstrap, entry)
                else:
                    wake_at = min(wake_at, entry.next_dial)
            dialing = sum(1 for peer in self._table if peer.dialing is not None)
            spare = self.config.target_peers - len(self._connected) - dialing
            for peer in self._table:
                if not self._wants_dial(peer, spare):
                    continue
                if peer.next_dial <= now:
                    if not (peer.bootstrap or peer.sticky):
                        spare -= 1
                    self._start_dial(peer)
                else:
                    wake_at = min(wake_at, peer.next_dial)
            self._wake_maintainer = trio.Event()
            with trio.move_on_at(wake_at):
                await self._wake_maintainer.wait()

    async def _exchange(self) -> None:
        """While short of ``target_peers``, now and then ask a neighbour for its peers."""
        while True:
            await trio.sleep(self.config.exchange_interval * random.uniform(0.8, 1.2))
            if 0 < len(self._connected) < self.config.target_peers:
                peer = random.choice(list(self._connected.values()))
                if peer.primary is not None:
                    peer.primary.send_control(GetPeers())
