"""The actor system: one identity, one nursery, the actors, the trust context, the transports.

Everything the system starts lives in its nursery, so leaving ``async with ActorSystem(...)``
stops all of it. Every envelope from another system goes through, in order: size limit,
signature, expiry, replay, admission, authorisation, then the behaviour (docs/actors.md).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Protocol, final

import trio

from . import _frames
from ._actor import Actor
from ._admission import Admission, AdmissionPolicy, classify
from ._cell import Cell, Delivery
from ._deadlines import Deadlines
from ._envelope import (
    DEFAULT_TTL_MS,
    MAX_ENVELOPE_SIZE,
    MAX_FUTURE_EXP_MS,
    MAX_SKEW_MS,
    Envelope,
    Handle,
    ReplyTo,
    now_ms,
)
from ._identity import Identity
from ._outcome import Outcome
from ._paths import check_path
from ._replay import ReplayCache
from ._reply import ReplySlot
from ._supervision import Restart, Supervision, Supervisor, root_cause
from .errors import (
    ActorNameTaken,
    Busy,
    EnvelopeError,
    EnvelopeExpired,
    EnvelopeNotYetValid,
    EnvelopeReplayed,
    InvokeTimeout,
    MalformedEnvelope,
    NuactorError,
    RemoteError,
    Unauthorized,
    Unreachable,
)
from .transport._base import Transport

__all__ = ["ActorSystem", "Authorizer", "DenyRemote", "SystemConfig"]

log = logging.getLogger("nuactor.system")

#: The behaviour replies are addressed to; handled by the system itself.
REPLY_BEHAVIOUR: Final = "/nuactor/reply"
#: The sender name used when the system itself (not one of its actors) sends.
SYSTEM_ACTOR: Final = "system"
#: ``to`` of a broadcast: everyone subscribed to its topic.
BROADCAST_HANDLE: Final = Handle("*", "*")


class Authorizer(Protocol):
    """What the system asks of a trust context (``nuactor.TrustContext`` implements it)."""

    def authorize(self, envelope: Envelope) -> None:
        """Return if the sender may invoke ``envelope.beh`` here; else raise ``Unauthorized``."""

    def proofs_for(self, subject: str, cmd: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """For an outgoing call: the chain's CIDs (``prf``) and tokens to attach (``tok``)."""


@final
class DenyRemote:
    """The default trust: remote calls are refused (give the system a ``TrustContext``)."""

    def __init__(self, did: str = "") -> None:
        self._did = did

    def authorize(self, envelope: Envelope) -> None:
        if envelope.sender.did == self._did:
            return
        raise Unauthorized(
            f"this system accepts no calls from other principals (refused {envelope.beh} from "
            f"{envelope.sender.did}): it was started without a trust context"
        )

    def proofs_for(self, subject: str, cmd: str) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        return (), ()


@final
@dataclass(frozen=True, slots=True)
class SystemConfig:
    """Limits and knobs of an actor system; the defaults suit a node."""

    mailbox_size: int = 256
    max_envelope_size: int = MAX_ENVELOPE_SIZE
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)
    root_supervision: Supervision = field(default_factory=Supervision)
    replay_cache_size: int = 1_000_000
    #: Skip re-verifying envelope signatures on a session whose proven DID is the sender's.
    trust_sessions: bool = False
    #: Refusal replies sent per second at most (they cost a signature each).
    refusal_replies_per_s: float = 200.0
    outbound_queue: int = 4096
    gossip_hops: int = 8
    gossip_seen_size: int = 100_000


async def _enqueue(cell: Cell, delivery: Delivery, *, timeout: float = math.inf) -> bool:
    """Put a local message in a mailbox: at once while there is room, else wait (backpressure)
    for at most ``timeout`` seconds; whether it went in.

    While the mailbox has room this is a cancellation point but not a scheduling point, like a
    write to a buffered stream: a burst of sends costs no task switch per message, and the
    mailbox bound keeps a sender from running ahead for long.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    try:
        cell.mailbox.put_nowait(delivery)
    except trio.WouldBlock:
        with trio.move_on_after(timeout):
            await cell.mailbox.put(delivery)
            return True
        return False
    return True


@dataclass(slots=True)
class _Outgoing:
    did: str | None  # None: broadcast to neighbours
    frame: bytes
    exclude: str | None = None


@final
class ActorSystem:
    """Hosts actors under one identity and connects them to other systems.

    >>> async with ActorSystem(identity, trust, transports=[network.transport()]) as system:
    ...     await system.spawn(Greeter, name="root")
    ...     reply = await system.invoke(Handle(other_did, "root"), "/public/hello", {})
    """

    def __init__(
        self,
        identity: Identity,
        trust: Authorizer | None = None,
        *,
        transports: Sequence[Transport] = (),
        config: SystemConfig | None = None,
        on_handled: Callable[[str, float, bool], None] | None = None,
    ) -> None:
        self.identity = identity
        #: Called after every handler with (behaviour, seconds, succeeded), for metrics.
        self.on_handled = on_handled
        self._did = identity.did
        self.trust: Authorizer = trust if trust is not None else DenyRemote(identity.did)
        self.transports = list(transports)
        self.config = config if config is not None else SystemConfig()
        self.counters: Counter[str] = Counter()
        self._cells: dict[str, Cell] = {}
        self._root = Supervisor(self, "<system>", self.config.root_supervision)
        self._pending: dict[bytes, ReplySlot] = {}
        self._deadlines = Deadlines()
        self._subscriptions: dict[str, set[str]] = {}
        self._admission = Admission(self.config.admission)
        self._replays = ReplayCache(max_entries=self.config.replay_cache_size, skew_ms=MAX_SKEW_MS)
        self._gossip_seen = ReplayCache(
            max_entries=self.config.gossip_seen_size, skew_ms=MAX_SKEW_MS
        )
        self._refusal_tokens = self.config.refusal_replies_per_s
        self._refusal_time = 0.0
        self._names = itertools.count(1)
        self._local_ids = itertools.count(1)
        self._sender_handles: dict[str, Handle] = {}
        self._outbound_send, self._outbound = trio.open_memory_channel[_Outgoing](
            self.config.outbound_queue
        )
        self._nursery: trio.Nursery | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    @property
    def did(self) -> str:
        """The DID of this system's identity: the ``did`` of every actor handle it hosts."""
        return self._did

    async def __aenter__(self) -> ActorSystem:
        stack = contextlib.AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        try:
            await nursery.start(self._root.serve)
            await nursery.start(self._deadlines.serve)
            nursery.start_soon(self._send_outgoing)
            for transport in self.transports:
                await nursery.start(transport.run, self)
        except BaseException:
            nursery.cancel_scope.cancel()
            await stack.__aexit__(None, None, None)
            raise
        self._nursery = nursery
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        assert stack is not None and self._nursery is not None
        self._nursery.cancel_scope.cancel()
        try:
            return await stack.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # One failure (the usual case) is raised as itself, not wrapped in nested groups.
            cause = root_cause(group)
            if not isinstance(cause, BaseExceptionGroup):
                raise cause from None
            raise
        finally:
            self._nursery = None
            for slot in self._pending.values():
                slot.fill(Outcome.failure("SystemStopped", "the actor system stopped"))
            self._pending.clear()

    # --- actors ------------------------------------------------------------------------------

    async def spawn(
        self,
        actor: Actor | Callable[[], Actor],
        *,
        name: str | None = None,
        restart: Restart = Restart.PERMANENT,
    ) -> Handle:
        """Start a top-level actor under the system's root supervisor; returns its handle."""
        return await self._root.start_child(actor, name=name, restart=restart)

    async def stop(self, handle: Handle | str) -> None:
        """Stop an actor (and its children) for good; queued messages are refused."""
        name = handle.actor if isinstance(handle, Handle) else handle
        cell = self._cells.get(name)
        if cell is None:
            return
        parent = self._cells.get(cell.parent)
        supervisor = self._root if parent is None else parent.children
        if supervisor is not None:
            await supervisor.stop_child(cell)

    def handle(self, name: str) -> Handle:
        """The handle of a local actor by name (whether or not it runs)."""
        return Handle(self._did, name)

    def actors(self) -> list[dict[str, Any]]:
        """The running actors, for inspection."""
        return [cell.describe() for cell in self._cells.values()]

    def _register(
        self, actor: Actor | Callable[[], Actor], *, name: str | None, restart: Restart, parent: str
    ) -> Cell:
        if name is None:
            name = f"{parent.strip('<>')}.{next(self._names)}"
        if name in self._cells:
            raise ActorNameTaken(f"an actor named {name!r} already runs in this system")
        if name == SYSTEM_ACTOR or not name:
            raise ValueError(f"{name!r} is not an actor name one can register")
        factory: Callable[[], Actor] = (lambda: actor) if isinstance(actor, Actor) else actor
        cell = Cell(
            self,
            name,
            factory,
            restart=restart,
            parent=parent,
            mailbox_size=self.config.mailbox_size,
        )
        self._cells[name] = cell
        return cell

    def _unregister(self, cell: Cell) -> None:
        if self._cells.get(cell.name) is cell:
            del self._cells[cell.name]
        for names in self._subscriptions.values():
            names.discard(cell.name)
        cell.close_mailbox()

    # --- calling actors ----------------------------------------------------------------------

    async def invoke(
        self,
        to: Handle,
        beh: str,
        body: Any = None,
        *,
        timeout: float = 30.0,
        sender: str = SYSTEM_ACTOR,
    ) -> Any:
        """Invoke ``beh`` on the actor ``to`` and return the reply body.

        Raises :class:`~nuactor.errors.RemoteError` (the behaviour raised, or there is no such
        actor or behaviour), :class:`~nuactor.errors.Unauthorized`,
        :class:`~nuactor.errors.Busy` or :class:`~nuactor.errors.InvokeTimeout`.
        """
        ttl_ms = max(1, min(int(timeout * 1000), MAX_FUTURE_EXP_MS))
        if to.did == self._did:
            cell = self._local_cell(to, beh)
            slot = ReplySlot()
            delivery = Delivery(self._local_envelope(sender, to, beh, body, ttl_ms), slot)
            if not await _enqueue(cell, delivery, timeout=timeout):
                raise InvokeTimeout(
                    f"no reply to {beh} from {to} within {timeout} s (its mailbox stayed full)"
                )
            return await self._wait_reply(slot, timeout, beh, to)
        prf, tok = self.trust.proofs_for(to.did, beh)
        envelope = Envelope.build(
            sender=Handle(self._did, sender),
            to=to,
            beh=check_path(beh),
            body=body,
            ttl_ms=ttl_ms,
            re=ReplyTo(self._did, SYSTEM_ACTOR, REPLY_BEHAVIOUR),
            prf=prf,
            tok=tok,
        ).sign(self.identity)
        slot = ReplySlot(expected_did=to.did)
        self._pending[envelope.id] = slot
        try:
            with trio.move_on_after(timeout) as scope:
                await self._transport_for(to.did).send(
                    to.did, _frames.envelope_frame(envelope.encode())
                )
            if scope.cancelled_caught:
                raise InvokeTimeout(f"could not send {beh} to {to} within {timeout} s")
            self.counters["envelopes_out"] += 1
            return await self._wait_reply(slot, timeout, beh, to)
        finally:
            self._pending.pop(envelope.id, None)

    async def _wait_reply(self, slot: ReplySlot, timeout: float, beh: str, to: Handle) -> Any:
        self._deadlines.watch(slot, timeout)
        outcome = await slot.wait()
        if slot.timed_out:
            raise InvokeTimeout(f"no reply to {beh} from {to} within {timeout} s")
        self._deadlines.answered()
        return outcome.unwrap()

    async def send(
        self, to: Handle, beh: str, body: Any = None, *, sender: str = SYSTEM_ACTOR
    ) -> None:
        """Send ``beh`` to ``to`` without waiting for a reply (a local sender waits only while
        the mailbox is full). A behaviour's failure is logged by the receiver."""
        if to.did == self._did:
            cell = self._local_cell(to, beh)
            envelope = self._local_envelope(sender, to, beh, body, DEFAULT_TTL_MS)
            await _enqueue(cell, Delivery(envelope))
            return
        prf, tok = self.trust.proofs_for(to.did, beh)
        envelope = Envelope.build(
            sender=Handle(self._did, sender),
            to=to,
            beh=check_path(beh),
            body=body,
            prf=prf,
            tok=tok,
        ).sign(self.identity)
        await self._transport_for(to.did).send(to.did, _frames.envelope_frame(envelope.encode()))
        self.counters["envelopes_out"] += 1

    async def broadcast(
        self, topic: str, beh: str, body: Any = None, *, sender: str = SYSTEM_ACTOR
    ) -> None:
        """Publish ``beh`` with ``body`` on ``topic``: every subscribed actor of every system the
        gossip reaches gets it once (this system's own subscribers included)."""
        check_path(topic, what="topic")
        prf, tok = self.trust.proofs_for("*", beh)
        envelope = Envelope.build(
            sender=Handle(self._did, sender),
            to=BROADCAST_HANDLE,
            beh=check_path(beh),
            body=body,
            topic=topic,
            prf=prf,
            tok=tok,
        ).sign(self.identity)
        self._gossip_seen.first_sight(self._did, envelope.id, envelope.exp, now_ms())
        self._deliver_to_subscribers(envelope, remote=False)
        frame = _frames.gossip_frame(envelope.encode(), self.config.gossip_hops)
        for transport in self.transports:
            await transport.broadcast(frame)
        self.counters["broadcasts_out"] += 1

    async def relay(self, data: bytes, *, timeout: float = 30.0) -> Outcome | None:
        """Pass on an envelope a client of this system signed (the REST gateway).

        The envelope is checked like any inbound one (size, signature, expiry, replay), then
        delivered here (admission and authorisation apply), forwarded to ``to.did``, or, for a
        broadcast, gossiped. If it asks for a reply (``re`` must then name this system), the
        reply's outcome is returned; else ``None``. Refusals before delivery raise
        :class:`~nuactor.errors.EnvelopeError` subclasses: the client is local, so telling it
        reflects nothing.
        """
        envelope = Envelope.decode(data, max_size=self.config.max_envelope_size)
        if envelope.cor is not None:
            raise MalformedEnvelope("a reply ('cor' set) cannot be relayed")
        if envelope.topic is not None:
            self._receive_gossip(self.config.gossip_hops + 1, data, session_did=None)
            return None
        re = envelope.re
        if re is not None and re.did != self._did:
            raise MalformedEnvelope(
                f"a relayed invoke must ask for its reply here: 're.did' must be {self._did}"
            )
        slot = None if re is None else ReplySlot(expected_did=envelope.to.did)
        if slot is not None:
            self._pending[envelope.id] = slot
        try:
            if envelope.to.did == self._did:
                if not self._replays.first_sight(
                    envelope.sender.did, envelope.id, envelope.exp, now_ms()
                ):
                    raise EnvelopeReplayed(f"envelope {envelope.id.hex()} was relayed before")
                self.counters["envelopes_in"] += 1
                self._admit_and_deliver(envelope, session_did=None)
            else:
                with trio.move_on_after(timeout) as scope:
                    await self._transport_for(envelope.to.did).send(
                        envelope.to.did, _frames.envelope_frame(data)
                    )
                if scope.cancelled_caught:
                    raise InvokeTimeout(f"could not reach {envelope.to.did} within {timeout} s")
                self.counters["envelopes_relayed"] += 1
            if slot is None:
                return None
            self._deadlines.watch(slot, timeout)
            outcome = await slot.wait()
            if slot.timed_out:
                raise InvokeTimeout(
                    f"no reply to {envelope.beh} from {envelope.to} within {timeout} s"
                )
            self._deadlines.answered()
            return outcome
        finally:
            self._pending.pop(envelope.id, None)

    def subscribe(self, topic: str, actor: str | Handle) -> None:
        """Deliver broadcasts on ``topic`` to the local ``actor`` (at the broadcast's ``beh``)."""
        name = actor.actor if isinstance(actor, Handle) else actor
        self._subscriptions.setdefault(check_path(topic, what="topic"), set()).add(name)

    def unsubscribe(self, topic: str, actor: str | Handle) -> None:
        name = actor.actor if isinstance(actor, Handle) else actor
        self._subscriptions.get(topic, set()).discard(name)

    def _local_envelope(
        self, sender: str, to: Handle, beh: str, body: Any, ttl_ms: int
    ) -> Envelope:
        """An unsigned envelope for delivery inside this system. It never leaves the process,
        so a counter makes its id unique enough, without asking the OS for randomness."""
        iat = now_ms()
        handle = self._sender_handles.get(sender)
        if handle is None:
            if len(self._sender_handles) >= 1024:
                self._sender_handles.clear()  # a cache, not a registry: keep it small
            handle = self._sender_handles[sender] = Handle(self._did, sender)
        return Envelope(
            next(self._local_ids).to_bytes(16, "big"),
            handle,
            to,
            beh,
            body,
            iat,
            iat + ttl_ms,
        )

    def _local_cell(self, to: Handle, beh: str) -> Cell:
        cell = self._cells.get(to.actor)
        if cell is None:
            raise RemoteError("UnknownActor", f"no actor named {to.actor!r} in {self._did}")
        if cell.behaviour(beh) is None and cell.actor is not None:
            raise RemoteError("UnknownBehaviour", f"actor {to.actor!r} has no behaviour {beh}")
        return cell

    def _transport_for(self, did: str) -> Transport:
        for transport in self.transports:
            if transport.reaches(did):
                return transport
        raise Unreachable(f"no transport of this system knows how to reach {did}")

    # --- outcomes ------------------------------------------------------------------------------

    async def _finish(self, delivery: Delivery, outcome: Outcome) -> None:
        """A behaviour is done: release its admission and tell whoever waits.

        A remote reply is sent from the handler's own task (no extra scheduling round, and a
        slow peer slows only its own replies); the synchronous paths queue theirs instead.
        """
        outgoing = self._settle(delivery, outcome)
        if outgoing is not None:
            await self._send_frame(outgoing)

    def _finish_nowait(self, delivery: Delivery, outcome: Outcome) -> None:
        outgoing = self._settle(delivery, outcome)
        if outgoing is not None:
            self._queue(outgoing)

    def _settle(self, delivery: Delivery, outcome: Outcome) -> _Outgoing | None:
        """Release the admission, fill a local waiter; the reply to send, if any."""
        if delivery.admitted is not None:
            self._admission.release(delivery.admitted)
            delivery.admitted = None
        if delivery.slot is not None:
            delivery.slot.fill(outcome)
            return None
        envelope = delivery.envelope
        if delivery.remote and envelope.re is not None:
            return self._reply(envelope, outcome)
        if not outcome.ok:
            log.warning(
                "%s from %s failed with nobody to tell: %s: %s",
                envelope.beh,
                envelope.sender.did,
                outcome.error_type,
                outcome.message,
            )
        return None

    def _reply(self, request: Envelope, outcome: Outcome) -> _Outgoing | None:
        """The signed reply to a remote request, ready to send (``None``: answered in place)."""
        re = request.re
        if re is None:
            return None
        if re.did == self._did:
            # A request relayed for a client of this system: its caller waits right here.
            slot = self._pending.get(request.id)
            if slot is not None:
                slot.fill(outcome)
            return None
        reply = Envelope.build(
            sender=Handle(self._did, request.to.actor),
            to=Handle(re.did, re.actor),
            beh=re.beh,
            body=outcome.to_body(),
            cor=request.id,
        )
        try:
            frame = _frames.envelope_frame(reply.sign(self.identity).encode())
        except EnvelopeError as exc:
            log.warning("reply to %s cannot be encoded: %s", request.beh, exc)
            failure = Outcome.failure(
                "UnencodableReply", f"the reply to {request.beh} cannot be sent: {exc}"
            )
            frame = _frames.envelope_frame(
                Envelope.build(
                    sender=reply.sender,
                    to=reply.to,
                    beh=re.beh,
                    body=failure.to_body(),
                    cor=request.id,
                )
                .sign(self.identity)
                .encode()
            )
        return _Outgoing(re.did, frame)

    def _queue(self, outgoing: _Outgoing) -> None:
        try:
            self._outbound_send.send_nowait(outgoing)
        except trio.WouldBlock:
            self.counters["outbound_dropped"] += 1
            log.warning("outbound queue full: dropped a frame for %s", outgoing.did or "gossip")

    async def _send_outgoing(self) -> None:
        async for outgoing in self._outbound:
            await self._send_frame(outgoing)

    async def _send_frame(self, outgoing: _Outgoing) -> None:
        """Send a reply, refusal or forwarded gossip; a failure is counted, never raised."""
        try:
            if outgoing.did is None:
                for transport in self.transports:
                    await transport.broadcast(outgoing.frame, exclude=outgoing.exclude)
            else:
                await self._transport_for(outgoing.did).send(outgoing.did, outgoing.frame)
                self.counters["envelopes_out"] += 1
        except NuactorError as exc:
            self.counters["outbound_failed"] += 1
            log.info("could not deliver a frame to %s: %s", outgoing.did or "gossip", exc)

    # --- inbound -----------------------------------------------------------------------------

    def receive_frame(self, frame: bytes, *, session_did: str | None) -> None:
        """Take one frame from a transport. Never blocks, never raises."""
        try:
            if not frame:
                self._refused("empty_frame")
            elif frame[0] == _frames.ENVELOPE:
                self._receive_envelope(memoryview(frame)[1:], session_did)
            elif frame[0] == _frames.GOSSIP and len(frame) > 2:
                self._receive_gossip(frame[1], frame[2:], session_did)
            else:
                self._refused("unknown_frame")
        except Exception:  # a bug must not take the system down with it
            log.exception("unexpected error on an inbound frame")
            self.counters["inbound_errors"] += 1

    def _decode(
        self, data: bytes | memoryview, session_did: str | None, *, forwarded: bool
    ) -> Envelope | None:
        """Size, signature and expiry. ``None`` (counted and logged) if refused."""
        verify = not (self.config.trust_sessions and not forwarded and session_did is not None)
        try:
            envelope = (
                Envelope.decode(data, max_size=self.config.max_envelope_size, verify_signature=True)
                if verify
                else self._decode_on_trusted_session(data, session_did)
            )
        except (EnvelopeExpired, EnvelopeNotYetValid) as exc:
            self._refused(type(exc).__name__)
            log.info("refused an envelope: %s", exc)
            return None
        except EnvelopeError as exc:
            # Unauthenticated: answering would let anyone aim our replies at a third party.
            self._refused(type(exc).__name__)
            log.info("refused an envelope from %s: %s", session_did or "?", exc)
            return None
        return envelope

    def _decode_on_trusted_session(
        self, data: bytes | memoryview, session_did: str | None
    ) -> Envelope:
        envelope = Envelope.decode(
            data, max_size=self.config.max_envelope_size, verify_signature=False
        )
        if envelope.sender.did != session_did:
            # Not the session's own principal: verify after all.
            envelope = Envelope.decode(data, max_size=self.config.max_envelope_size)
        return envelope

    def _receive_envelope(self, data: bytes | memoryview, session_did: str | None) -> None:
        envelope = self._decode(data, session_did, forwarded=False)
        if envelope is None:
            return
        self.counters["envelopes_in"] += 1
        sender = envelope.sender.did
        try:
            fresh = self._replays.first_sight(sender, envelope.id, envelope.exp, now_ms())
        except Busy as exc:
            self._refuse(envelope, exc, session_did)
            return
        if not fresh:
            self._refused("replay")  # the original was answered; a replay gets nothing
            return
        if envelope.cor is not None:
            self._receive_reply(envelope)
            return
        if envelope.topic is not None:
            self._accept_broadcast(envelope, bytes(data), 1, session_did)
            return
        self._admit_and_deliver(envelope, session_did)

    def _receive_reply(self, envelope: Envelope) -> None:
        slot = self._pending.get(envelope.cor)  # type: ignore[arg-type]
        if slot is None or slot.expected_did != envelope.sender.did:
            self._refused("unexpected_reply")
            return
        slot.fill(Outcome.from_body(envelope.body))

    def _admit_and_deliver(self, envelope: Envelope, session_did: str | None) -> None:
        kind = classify(envelope.beh, envelope.topic)
        try:
            self._admission.admit(envelope.sender.did, kind)
        except Busy as exc:
            self._refuse(envelope, exc, session_did)
            return
        delivery = Delivery(envelope, admitted=kind, remote=True)
        try:
            self.trust.authorize(envelope)
            cell = self._local_cell(envelope.to, envelope.beh)
            cell.mailbox.put_nowait(delivery)
        except (Unauthorized, RemoteError) as exc:
            self._finish_nowait(delivery, Outcome.from_exception(exc))
            self._refused(type(exc).__name__, answered=envelope.re is not None)
        except trio.WouldBlock:
            self._finish_nowait(
                delivery,
                Outcome.failure(
                    "Busy", f"the mailbox of actor {envelope.to.actor!r} is full", retry_after=0.1
                ),
            )
            self._refused("mailbox_full", answered=envelope.re is not None)

    def _refuse(self, envelope: Envelope, exc: Exception, session_did: str | None) -> None:
        """A refusal before admission: answered only within the refusal-reply budget."""
        self._refused(type(exc).__name__)
        if envelope.re is None or not self._take_refusal_token():
            return
        outgoing = self._reply(envelope, Outcome.from_exception(exc))
        if outgoing is not None:
            self._queue(outgoing)

    def _take_refusal_token(self) -> bool:
        now = trio.current_time()
        rate = self.config.refusal_replies_per_s
        self._refusal_tokens = min(rate, self._refusal_tokens + (now - self._refusal_time) * rate)
        self._refusal_time = now
        if self._refusal_tokens < 1:
            self.counters["refusal_replies_suppressed"] += 1
            return False
        self._refusal_tokens -= 1
        return True

    def _refused(self, reason: str, *, answered: bool = False) -> None:
        self.counters[f"refused_{reason}"] += 1

    # --- gossip --------------------------------------------------------------------------------

    def _receive_gossip(self, hops: int, data: bytes, session_did: str | None) -> None:
        envelope = self._decode(data, session_did, forwarded=True)
        if envelope is None:
            return
        if envelope.topic is None:
            self._refused("gossip_without_topic")
            return
        self._accept_broadcast(envelope, data, hops, session_did)

    def _accept_broadcast(
        self, envelope: Envelope, data: bytes, hops: int, session_did: str | None
    ) -> None:
        """A verified broadcast: once only, admitted and authorised here before it is passed
        on, so that nobody can make the network relay what no node of it would accept."""
        sender = envelope.sender.did
        try:
            fresh = self._gossip_seen.first_sight(sender, envelope.id, envelope.exp, now_ms())
            if fresh:
                self._admission.admit(sender, "broadcast")
        except Busy as exc:
            self._refused("broadcast_busy")
            log.info("dropped a broadcast from %s: %s", sender, exc)
            return
        if not fresh:
            self.counters["gossip_duplicates"] += 1
            return
        try:
            self.trust.authorize(envelope)
        except Unauthorized as exc:
            self._refused("broadcast_unauthorized")
            log.info("dropped a broadcast %s: %s", envelope.beh, exc)
            return
        finally:
            self._admission.release("broadcast")
        self.counters["broadcasts_in"] += 1
        if hops > 1:
            frame = _frames.gossip_frame(data, hops - 1)
            self._queue(_Outgoing(None, frame, exclude=session_did))
        self._deliver_to_subscribers(envelope, remote=True)

    def _deliver_to_subscribers(self, envelope: Envelope, *, remote: bool) -> None:
        assert envelope.topic is not None
        for name in sorted(self._subscriptions.get(envelope.topic, ())):
            cell = self._cells.get(name)
            if cell is None:
                continue
            try:
                cell.mailbox.put_nowait(Delivery(envelope, remote=False))
            except trio.WouldBlock:
                self.counters["broadcast_mailbox_full"] += 1
                log.warning("dropped broadcast %s for %r: mailbox full", envelope.beh, name)
