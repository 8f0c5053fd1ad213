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

_V2: Final = """
CREATE TABLE onboarding (
    id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row: the share of the machine onboarded
    cpu_millicores INTEGER NOT NULL CHECK (cpu_millicores >= 0),  -- cores in thousandths
    cpu_hz INTEGER NOT NULL CHECK (cpu_hz >= 0),
    ram INTEGER NOT NULL CHECK (ram >= 0),                        -- bytes
    disk INTEGER NOT NULL CHECK (disk >= 0),                      -- bytes
    gpus TEXT NOT NULL,                     -- JSON list of whole GPUs (Gpu.to_dict())
    onboarded_at REAL NOT NULL              -- Unix time, seconds
);

CREATE TABLE allocations (
    alloc_id TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('committed', 'allocated')),
    cpu_millicores INTEGER NOT NULL CHECK (cpu_millicores >= 0),
    cpu_hz INTEGER NOT NULL CHECK (cpu_hz >= 0),
    ram INTEGER NOT NULL CHECK (ram >= 0),
    disk INTEGER NOT NULL CHECK (disk >= 0),
    created_at REAL NOT NULL,               -- Unix time, seconds
    expires_at REAL,                        -- a commitment's end (Unix time); NULL once allocated
    allocated_at REAL,                      -- NULL while committed
    CHECK ((state = 'committed') = (expires_at IS NOT NULL AND allocated_at IS NULL)),
    CHECK ((state = 'allocated') = (expires_at IS NULL AND allocated_at IS NOT NULL))
) WITHOUT ROWID;
CREATE INDEX allocations_expiry ON allocations (expires_at) WHERE state = 'committed';

CREATE TABLE allocation_gpus (
    gpu TEXT PRIMARY KEY,                   -- vendor:index; the key makes a GPU held at most once
    alloc_id TEXT NOT NULL REFERENCES allocations (alloc_id) ON DELETE CASCADE,
    device TEXT NOT NULL                    -- JSON (Gpu.to_dict())
) WITHOUT ROWID;
CREATE INDEX allocation_gpus_alloc ON allocation_gpus (alloc_id);

CREATE TABLE allocation_ports (
    port INTEGER PRIMARY KEY CHECK (port BETWEEN 1 AND 65535),  -- booked at most once
    alloc_id TEXT NOT NULL REFERENCES allocations (alloc_id) ON DELETE CASCADE,
    dynamic INTEGER NOT NULL CHECK (dynamic IN (0, 1))          -- picked by the node, or asked
);
CREATE INDEX allocation_ports_alloc ON allocation_ports (alloc_id);
"""

_V3: Final = """
CREATE TABLE deployments (                 -- this node as an orchestrator
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,                    -- Preparing, Committing, ..., Completed
    ensemble TEXT NOT NULL,                 -- JSON: the ensemble as submitted (its file format)
    manifest TEXT NOT NULL,                 -- JSON: where each node landed, its allocations' states
    reason TEXT NOT NULL DEFAULT '',        -- why it failed, or what it waits for
    created_at REAL NOT NULL,               -- Unix time, seconds
    updated_at REAL NOT NULL,
    deadline REAL NOT NULL                  -- give up placing it after this (Unix time)
) WITHOUT ROWID;
CREATE INDEX deployments_state ON deployments (state);

CREATE TABLE deployment_logs (             -- allocations' output, kept once their provider is done
    deployment TEXT NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    allocation TEXT NOT NULL,
    lines TEXT NOT NULL,                    -- JSON list of {stream, time, text}
    PRIMARY KEY (deployment, allocation)
) WITHOUT ROWID;

CREATE TABLE hosted (                      -- this node as a provider: the nodes it hosts
    id TEXT PRIMARY KEY,                    -- deployment/node, also the ledger's alloc_id
    deployment TEXT NOT NULL,
    node TEXT NOT NULL,
    orchestrator TEXT NOT NULL,             -- the DID allowed to act on it
    ensemble TEXT NOT NULL,                 -- JSON: the node's part of the ensemble
    state TEXT NOT NULL CHECK (state IN ('committed', 'allocated')),
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX hosted_deployment ON hosted (deployment);
"""

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "events and a key-value table for small node state", (_V1,)),
    Migration(2, "the resource ledger: onboarding, commitments and allocations", (_V2,)),
    Migration(3, "deployments (orchestrator) and hosted nodes (provider)", (_V3,)),
)

#: The schema version this code creates and understands.
SCHEMA_VERSION: Final = len(MIGRATIONS)
