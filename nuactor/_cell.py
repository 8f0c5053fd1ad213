"""One registered actor at run time: its mailbox, its current instance and its handlers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, final

import trio

from ._actor import Actor, Behaviour, Context
from ._envelope import Envelope, Handle
from ._mailbox import Mailbox
from ._outcome import Outcome
from ._supervision import Restart, Supervisor

if TYPE_CHECKING:
    from ._reply import ReplySlot
    from ._system import ActorSystem

log = logging.getLogger("nuactor.actor")


@final
@dataclass(slots=True)
class Delivery:
    """A message in a mailbox: the envelope, where its outcome goes, and its admission."""

    envelope: Envelope
    #: For a local invoke: where the caller waits for the outcome.
    slot: ReplySlot | None = None
    #: For a remote message: the admission class to release when handled.
    admitted: str | None = None
    #: Whether the envelope came from another system (so its reply is an envelope).
    remote: bool = False


@final
class Cell:
    """A named actor. The mailbox outlives restarts; the instance does not."""

    def __init__(
        self,
        system: ActorSystem,
        name: str,
        factory: Callable[[], Actor],
        *,
        restart: Restart,
        parent: str,
        mailbox_size: int,
    ) -> None:
        self._system = system
        self.name = name
        self.handle = Handle(system.did, name)
        self._factory = factory
        self.restart = restart
        self.parent = parent
        self.mailbox: Mailbox[Delivery] = Mailbox(mailbox_size)
        self.actor: Actor | None = None
        self.children: Supervisor | None = None
        self.generation = 0
        self.has_started = False
        self._scope: trio.CancelScope | None = None
        self._done: trio.Event | None = None

    def behaviour(self, path: str) -> Behaviour | None:
        actor = self.actor
        return None if actor is None else actor.behaviours.get(path)

    async def run_instance(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Run one instance of the actor until it is stopped (returns) or crashes (raises)."""
        self.has_started = False
        done = self._done = trio.Event()
        try:
            actor = self._factory()
            self.actor = actor
            self.children = Supervisor(self._system, self.name, actor.supervision)
            with trio.CancelScope() as scope:
                self._scope = scope
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.children.serve)
                    context = Context(self._system, self, None)
                    await actor.started(context)
                    self.has_started = True
                    task_status.started()
                    nursery.start_soon(actor.run, context)
                    await self._serve_mailbox(nursery)
        finally:
            self._scope = None
            done.set()

    async def stop(self) -> None:
        """Stop the current instance (its children too) and wait until it has stopped."""
        if self._scope is not None:
            self._scope.cancel()
        if self._done is not None:
            await self._done.wait()

    async def _serve_mailbox(self, nursery: trio.Nursery) -> None:
        mailbox = self.mailbox
        while True:
            try:
                # Drain what is queued without a scheduling point per message; wait when empty.
                delivery = mailbox.get_nowait()
            except trio.WouldBlock:
                delivery = await mailbox.get()
            behaviour = self.behaviour(delivery.envelope.beh)
            if behaviour is None:
                await self._system._finish(
                    delivery,
                    Outcome.failure(
                        "UnknownBehaviour",
                        f"actor {self.name!r} has no behaviour {delivery.envelope.beh}",
                    ),
                )
            elif behaviour.concurrent:
                nursery.start_soon(self._handle, behaviour, delivery)
            else:
                await self._handle(behaviour, delivery)

    async def _handle(self, behaviour: Behaviour, delivery: Delivery) -> None:
        observe = self._system.on_handled
        if observe is None:
            await self._run_handler(behaviour, delivery)
            return
        start = trio.current_time()
        ok = False
        try:
            ok = await self._run_handler(behaviour, delivery)
        finally:
            observe(behaviour.path, trio.current_time() - start, ok)

    async def _run_handler(self, behaviour: Behaviour, delivery: Delivery) -> bool:
        """Run the handler and deliver its outcome; whether it succeeded."""
        envelope = delivery.envelope
        try:
            result = await behaviour.handler(Context(self._system, self, envelope), envelope.body)
        except Exception as exc:
            log.info("behaviour %s of %r raised %r", envelope.beh, self.name, exc)
            outcome = Outcome.from_exception(exc)
        except BaseException:
            self._system._finish_nowait(
                delivery,
                Outcome.failure(
                    "ActorStopped", f"actor {self.name!r} stopped while handling {envelope.beh}"
                ),
            )
            raise
        else:
            if delivery.slot is None and delivery.admitted is None and not delivery.remote:
                return True  # a local send that succeeded: nobody to tell, nothing to release
            outcome = Outcome.success(result)
        await self._system._finish(delivery, outcome)
        return outcome.ok

    def close_mailbox(self) -> None:
        """Refuse everything still queued: the actor is gone for good."""
        self.mailbox.close()
        while True:
            try:
                delivery = self.mailbox.get_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
            self._system._finish_nowait(
                delivery, Outcome.failure("UnknownActor", f"actor {self.name!r} has stopped")
            )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parent": self.parent,
            "generation": self.generation,
            "queued": len(self.mailbox),
        }
