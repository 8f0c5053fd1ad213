"""The events table: what happened on the node (onboarded, a deployment failed, ...), kept in
the store for ``dmsnode`` commands and the REST event stream.

Ids only grow (``AUTOINCREMENT``), so ``since_id`` is a resumable cursor. The table keeps the
newest ``keep`` ids: each :meth:`Events.record` deletes the ones that fall out of that window,
so it never grows without bound.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, final

from ..config import LOG_LEVELS
from ..store import Store

__all__ = ["DEFAULT_KEEP", "Event", "Events"]

#: How many events are kept by default (``observability.events_keep``).
DEFAULT_KEEP: Final = 100_000


@final
@dataclass(frozen=True)
class Event:
    """One recorded event."""

    id: int
    ts_ms: int
    kind: str
    level: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """As JSON for the API and ``--json``."""
        return {
            "id": self.id,
            "ts_ms": self.ts_ms,
            "kind": self.kind,
            "level": self.level,
            "data": self.data,
        }


@final
class Events:
    """Records and lists events in a :class:`~dmsnode.store.Store`."""

    def __init__(self, store: Store, *, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ValueError(f"events keep must be at least 1, got {keep}")
        self._store = store
        self.keep = keep

    async def record(self, kind: str, data: Mapping[str, Any], level: str = "info") -> int:
        """Record an event and return its id once it is committed.

        ``data`` must be a JSON-serialisable mapping; ``level`` one of debug, info, warning,
        error, critical. Events older than the newest ``keep`` are deleted in the same
        transaction.
        """
        if not isinstance(kind, str) or not kind:
            raise ValueError("an event kind must be a non-empty string")
        if level not in LOG_LEVELS:
            raise ValueError(f"unknown event level {level!r} (known: {', '.join(LOG_LEVELS)})")
        if not isinstance(data, Mapping):
            raise TypeError(f"event data must be a mapping, got {type(data).__name__}")
        text = json.dumps(dict(data), allow_nan=False, separators=(",", ":"), sort_keys=True)
        ts_ms = time.time_ns() // 1_000_000
        keep = self.keep

        def insert(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO events (ts_ms, kind, level, data) VALUES (?, ?, ?, ?)",
                (ts_ms, kind, level, text),
            )
            new_id = cursor.lastrowid
            assert new_id is not None
            conn.execute("DELETE FROM events WHERE id <= ?", (new_id - keep,))
            return new_id

        return await self._store.write(insert)

    async def list(
        self, *, since_id: int | None = None, kind: str | None = None, limit: int = 100
    ) -> list[Event]:
        """Events in id order: with ``since_id``, the first ``limit`` after it (a cursor);
        without, the newest ``limit``. ``kind`` keeps only events of that kind."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        where: list[str] = []
        args: list[int | str] = []
        if since_id is not None:
            where.append("id > ?")
            args.append(since_id)
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if since_id is not None else "DESC"
        sql = (
            f"SELECT id, ts_ms, kind, level, data FROM events {clause} ORDER BY id {order} LIMIT ?"
        )

        def select(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(sql, (*args, limit)).fetchall()
            return [Event(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

        events = await self._store.read(select)
        return events if since_id is not None else events[::-1]

    async def prune(self, keep: int | None = None) -> int:
        """Delete all but the newest ``keep`` events (default :attr:`keep`) exactly, whatever
        gaps the ids have; return how many were deleted."""
        keep = self.keep if keep is None else keep
        if keep < 0:
            raise ValueError(f"keep must not be negative, got {keep}")

        def delete(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?", (keep,)
            ).fetchone()
            if row is None:
                return 0
            return conn.execute("DELETE FROM events WHERE id <= ?", (row[0],)).rowcount

        return await self._store.write(delete)

    async def count(self) -> int:
        """How many events the table holds."""
        return await self._store.read(
            lambda conn: int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        )
