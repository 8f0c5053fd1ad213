"""The store's schema, as the list of migrations that builds it.

To change the schema, append ``Migration(N + 1, "what it adds", (SQL or functions,))`` to
``MIGRATIONS``; never edit a migration that has been released, since existing files have already
run it. A step that is a function receives the connection inside the migration's transaction
and must not commit. See docs/config.md, "The store".
"""

from __future__ import annotations

from typing import Final

from ._migration import Migration

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

_V1: Final = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so ids are stable cursors
    ts_ms INTEGER NOT NULL,                -- Unix time in milliseconds
    kind TEXT NOT NULL,
    level TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warning', 'error', 'critical')),
    data TEXT NOT NULL                     -- a JSON object
);
CREATE INDEX events_kind_id ON events (kind, id);

CREATE TABLE kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL                    -- JSON
) WITHOUT ROWID;
"""

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "events and a key-value table for small node state", (_V1,)),
)

#: The schema version this code creates and understands.
SCHEMA_VERSION: Final = len(MIGRATIONS)
