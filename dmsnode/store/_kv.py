"""Small pieces of node state as JSON values under string keys (the ``kv`` table)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, final

from ._store import Store

__all__ = ["KeyValue"]


@final
class KeyValue:
    """The ``kv`` table of a store: JSON values, each write committed before it returns."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, key: str, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""

        def fetch(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        text = await self._store.read(fetch)
        return default if text is None else json.loads(text)

    async def set(self, key: str, value: Any) -> None:
        """Store ``value`` (anything JSON can hold) under ``key``, replacing what was there."""
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))

        def put(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO kv (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, text),
            )

        await self._store.write(put)

    async def delete(self, key: str) -> bool:
        """Remove ``key``; whether it was there."""

        def remove(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM kv WHERE key = ?", (key,)).rowcount > 0

        return await self._store.write(remove)
