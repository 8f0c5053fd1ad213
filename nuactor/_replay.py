"""The replay cache: each ``(from.did, id)`` is accepted once, remembered until it expires."""

from __future__ import annotations

import heapq
from typing import final

from .errors import Busy


@final
class ReplayCache:
    """Seen envelope ids, each kept until its ``exp`` (plus clock skew) has passed.

    Memory is bounded by ``max_entries``: when full, new envelopes are refused as :class:`Busy`
    rather than old ids forgotten, because forgetting would let a replay through.
    """

    def __init__(self, *, max_entries: int, skew_ms: int) -> None:
        self._seen: set[tuple[str, bytes]] = set()
        self._expiries: list[tuple[int, str, bytes]] = []
        self._max = max_entries
        self._skew = skew_ms

    def __len__(self) -> int:
        return len(self._seen)

    def first_sight(self, did: str, msg_id: bytes, exp: int, now: int) -> bool:
        """Record the id; ``False`` if it was seen before (a replay)."""
        expiries = self._expiries
        horizon = now - self._skew
        while expiries and expiries[0][0] < horizon:
            _, old_did, old_id = heapq.heappop(expiries)
            self._seen.discard((old_did, old_id))
        key = (did, msg_id)
        if key in self._seen:
            return False
        if len(self._seen) >= self._max:
            raise Busy(
                "too many messages in flight to check for replays; retry shortly", retry_after=1.0
            )
        self._seen.add(key)
        heapq.heappush(expiries, (exp, did, msg_id))
        return True
