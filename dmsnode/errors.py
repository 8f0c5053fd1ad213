"""The one hierarchy of errors that dmsnode raises.

The CLI prints any :class:`DmsError` (and any :class:`nuactor.errors.NuactorError`) as one line
and exits 1; anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .ensemble import SpecError

__all__ = [
    "ApiError",
    "BadRequest",
    "CommitmentExpired",
    "ConfigError",
    "DeploymentError",
    "DeploymentRefused",
    "DmsError",
    "DuplicateAllocation",
    "EnsembleInvalid",
    "ExecutionRefused",
    "ExecutorError",
    "ExecutorUnavailable",
    "ImageUnavailable",
    "LedgerError",
    "NodeUnreachable",
    "NotEnoughResources",
    "NotOnboarded",
    "OffboardRefused",
    "OnboardingRefused",
    "PortUnavailable",
    "RequestRefused",
    "StoreError",
    "UnknownAllocation",
    "UnknownDeployment",
]


class DmsError(Exception):
    """Base class of every error dmsnode raises on purpose."""


class ConfigError(DmsError):
    """The configuration file or a configuration value is not acceptable; the key is named."""


class ApiError(DmsError):
    """The REST API cannot serve: its address is taken or cannot be bound (the address is
    named), or its server stopped on its own."""


class BadRequest(DmsError):
    """A request to the node is missing a field or has one of the wrong type; the field is named."""


class StoreError(DmsError):
    """The node's database cannot be opened or used (corrupt, not SQLite, a newer schema); the
    file is named."""


class NodeUnreachable(DmsError):
    """The CLI cannot reach the node's REST API (is ``dmsnode run`` running? which address?)."""


class RequestRefused(DmsError):
    """The node answered a CLI request with an error: ``error`` is its type, ``status`` the
    HTTP status, and the message its explanation."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail


class OnboardingRefused(DmsError):
    """An onboarding request breaks a limit (cores, RAM, GPUs, disk, what is in use); the message
    names every limit it broke."""


class LedgerError(DmsError):
    """The resource ledger refused an operation; subclasses say why."""


class NotOnboarded(LedgerError):
    """The node has no onboarded share, so nothing can be committed, allocated or offboarded."""


class OffboardRefused(LedgerError):
    """Offboarding while allocations exist, without ``force``; the allocations are counted."""


class NotEnoughResources(LedgerError):
    """A commitment does not fit in the free share; the message names what was short, what was
    asked and what is free."""


class PortUnavailable(LedgerError):
    """A public port cannot be reserved: outside ``job.port_range``, already booked, or too few
    free ports for the dynamic ones asked; the port or the range is named."""


class UnknownAllocation(LedgerError):
    """No commitment or allocation has this id (an expired commitment is gone); the id is named."""


class DuplicateAllocation(LedgerError):
    """The id is already committed or allocated; the id is named."""


class CommitmentExpired(LedgerError):
    """A commitment's TTL passed before it was allocated; its resources are free again."""


class ExecutorError(DmsError):
    """An executor could not do what was asked (start, stop, logs, cleanup); the message says
    why. Subclasses name the cases a caller tells apart."""


class ExecutorUnavailable(ExecutorError):
    """The executor cannot run anything on this machine (no Docker daemon, ...); the reason is
    the one ``availability()`` gives."""


class ImageUnavailable(ExecutorError):
    """A container image is neither on this node nor pullable; the image is named, with the
    daemon's answer."""


class ExecutionRefused(ExecutorError):
    """A spec asks for what this node does not allow or this executor cannot do (a privileged
    container, a container without an image); what was refused is named."""


class EnsembleInvalid(DmsError):
    """An ensemble file breaks the spec; ``errors`` holds every problem, each with its path in
    the file and its line where known."""

    def __init__(self, errors: Sequence[SpecError]) -> None:
        self.errors: tuple[SpecError, ...] = tuple(errors)
        count = len(self.errors)
        listed = "; ".join(str(e) for e in self.errors)
        super().__init__(f"invalid ensemble ({count} error{'s' if count != 1 else ''}): {listed}")


class DeploymentError(DmsError):
    """A deployment could not be created, placed, started or found."""


class UnknownDeployment(DeploymentError):
    """No deployment (or no part of one on this provider) has that id."""


class DeploymentRefused(DeploymentError):
    """A provider refused a step of a deployment (commit, allocate, start); the message says
    which and why."""
