"""Admission: how much work other principals may ask of a system (DESIGN §2.4).

Each sender DID has a token bucket per class of message, and each class caps the handlers in
flight across all senders. ``/public/*`` behaviours and broadcasts have their own, smaller
budgets, so that anonymous-ish traffic cannot crowd out authorised calls.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, Literal, final

import trio

from ._paths import is_under
from .errors import Busy

__all__ = ["AdmissionPolicy", "Budget"]

AdmissionClass = Literal["default", "public", "broadcast"]
CLASSES: Final[tuple[AdmissionClass, ...]] = ("default", "public", "broadcast")


@final
@dataclass(frozen=True, slots=True)
class Budget:
    """Per sender: ``rate`` messages/s with bursts of ``burst``; per class: ``max_concurrent``."""

    rate: float
    burst: float
    max_concurrent: int


@final
@dataclass(frozen=True, slots=True)
class AdmissionPolicy:
    """The budgets of each class, and how many senders' buckets are remembered."""

    default: Budget = field(
        default_factory=lambda: Budget(rate=500.0, burst=1000.0, max_concurrent=512)
    )
    public: Budget = field(default_factory=lambda: Budget(rate=20.0, burst=40.0, max_concurrent=64))
    broadcast: Budget = field(
        default_factory=lambda: Budget(rate=20.0, burst=40.0, max_concurrent=64)
    )
    max_senders: int = 10_000

    def budget(self, kind: AdmissionClass) -> Budget:
        return getattr(self, kind)  # type: ignore[no-any-return]


def classify(beh: str, topic: str | None) -> AdmissionClass:
    """The admission class of a message."""
    if topic is not None:
        return "broadcast"
    if is_under(beh, "/public"):
        return "public"
    return "default"


@final
class Admission:
    """Token buckets per (class, sender) and in-flight counts per class."""

    def __init__(self, policy: AdmissionPolicy) -> None:
        self.policy = policy
        self._buckets: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self.in_flight: dict[str, int] = dict.fromkeys(CLASSES, 0)

    def admit(self, sender: str, kind: AdmissionClass) -> None:
        """Take one token and one handler slot, or raise :class:`Busy` saying which ran out."""
        budget = self.policy.budget(kind)
        if self.in_flight[kind] >= budget.max_concurrent:
            raise Busy(
                f"too many {kind} requests in progress ({budget.max_concurrent}); retry shortly",
                retry_after=0.1,
            )
        now = trio.current_time()
        key = (kind, sender)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [budget.burst, now]
            self._buckets[key] = bucket
            if len(self._buckets) > self.policy.max_senders:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(budget.burst, bucket[0] + (now - bucket[1]) * budget.rate)
            bucket[1] = now
        if bucket[0] < 1.0:
            wait = (1.0 - bucket[0]) / budget.rate
            raise Busy(
                f"rate limit for {kind} messages from {sender} ({budget.rate:g}/s) exceeded; "
                f"retry in {wait:.2f} s",
                retry_after=wait,
            )
        bucket[0] -= 1.0
        self.in_flight[kind] += 1

    def release(self, kind: str) -> None:
        """A handler admitted as ``kind`` has finished."""
        self.in_flight[kind] -= 1
