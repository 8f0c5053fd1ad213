"""Actors and their behaviours: what user code writes (DESIGN §2.4).

An :class:`Actor` has behaviours, ``async`` handlers registered by path. A handler gets a
:class:`Context` and the decoded body; what it returns is the reply, what it raises reaches the
caller as a :class:`~nuactor.errors.RemoteError` (the actor keeps running). An actor may also
have a long-running :meth:`Actor.run`; if that, or :meth:`Actor.started`, fails, the actor has
crashed and its supervisor decides what happens next.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, final

from ._envelope import Envelope, Handle
from ._paths import check_path
from ._supervision import Restart, Supervision, Supervisor

if TYPE_CHECKING:
    from ._system import ActorSystem

__all__ = ["Actor", "Behaviour", "Context", "behaviour"]

Handler = Callable[["Context", Any], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
_MARK: Final = "__nuactor_behaviour__"


@final
@dataclass(frozen=True, slots=True)
class Behaviour:
    """A handler registered at a path. ``concurrent`` lets messages run in parallel."""

    path: str
    handler: Handler
    concurrent: bool = False


def behaviour(path: str, *, concurrent: bool = False) -> Callable[[F], F]:
    """Mark an ``async def`` method of an :class:`Actor` subclass as the behaviour at ``path``.

    >>> class Greeter(Actor):
    ...     @behaviour("/public/hello")
    ...     async def hello(self, ctx, body):
    ...         return f"hello {ctx.sender}"
    """
    check_path(path)

    def mark(method: F) -> F:
        setattr(method, _MARK, (path, concurrent))
        return method

    return mark


class Actor:
    """Base class of actors. Subclass it and mark methods with :func:`behaviour`, or create a
    plain ``Actor()`` and register functions with :meth:`on`.

    ``supervision`` says how this actor's children are restarted when they crash.
    """

    supervision: ClassVar[Supervision] = Supervision()
    _declared: ClassVar[dict[str, tuple[str, bool]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared: dict[str, tuple[str, bool]] = {}
        for klass in reversed(cls.__mro__):
            for attribute, value in vars(klass).items():
                mark = getattr(value, _MARK, None)
                if mark is not None:
                    path, concurrent = mark
                    declared[path] = (attribute, concurrent)
        cls._declared = declared

    def __init__(self) -> None:
        self._behaviours: dict[str, Behaviour] = {
            path: Behaviour(path, getattr(self, attribute), concurrent)
            for path, (attribute, concurrent) in self._declared.items()
        }

    @property
    def behaviours(self) -> Mapping[str, Behaviour]:
        """The behaviours of this actor, by path."""
        return self._behaviours

    def add_behaviour(self, path: str, handler: Handler, *, concurrent: bool = False) -> None:
        """Register ``handler(ctx, body)`` at ``path`` (replacing any handler there)."""
        self._behaviours[check_path(path)] = Behaviour(path, handler, concurrent)

    def remove_behaviour(self, path: str) -> None:
        """Unregister the behaviour at ``path`` (nothing happens if there is none)."""
        self._behaviours.pop(path, None)

    def on(self, path: str, *, concurrent: bool = False) -> Callable[[F], F]:
        """Decorator form of :meth:`add_behaviour` for plain functions."""

        def register(handler: F) -> F:
            self.add_behaviour(path, handler, concurrent=concurrent)
            return handler

        return register

    async def started(self, ctx: Context) -> None:
        """Called when the actor starts (and after every restart), before any message."""

    async def run(self, ctx: Context) -> None:
        """The actor's own long-running work, if any. Raising here crashes the actor."""


@final
class Context:
    """What a behaviour (or ``started``/``run``) knows about its call and its world."""

    __slots__ = ("_cell", "envelope", "system")

    def __init__(self, system: ActorSystem, cell: Any, envelope: Envelope | None) -> None:
        self.system = system
        self._cell = cell
        #: The envelope being handled (``None`` in ``started`` and ``run``).
        self.envelope = envelope

    @property
    def self(self) -> Handle:
        """This actor's handle."""
        return Handle(self.system.did, self._cell.name)

    @property
    def sender(self) -> str:
        """The DID of the principal that sent the message being handled."""
        if self.envelope is None:
            raise RuntimeError("no message is being handled")
        return self.envelope.sender.did

    async def spawn(
        self,
        actor: Actor | Callable[[], Actor],
        *,
        name: str | None = None,
        restart: Restart = Restart.PERMANENT,
    ) -> Handle:
        """Start a child of this actor, supervised by it; returns the child's handle.

        Pass a factory (such as the class) rather than an instance to get fresh state on every
        restart.
        """
        children: Supervisor = self._cell.children
        return await children.start_child(actor, name=name, restart=restart)

    async def invoke(self, to: Handle, beh: str, body: Any = None, *, timeout: float = 30.0) -> Any:
        """Invoke ``beh`` on ``to`` as this actor and return the reply body."""
        return await self.system.invoke(to, beh, body, timeout=timeout, sender=self._cell.name)

    async def send(self, to: Handle, beh: str, body: Any = None) -> None:
        """Send ``beh`` to ``to`` as this actor, expecting no reply."""
        await self.system.send(to, beh, body, sender=self._cell.name)
