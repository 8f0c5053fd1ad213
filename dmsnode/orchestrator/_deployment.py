"""A deployment as the orchestrator keeps it: state, ensemble, manifest; and its rows in the store.

The manifest is plain data (JSON in the store): for every slot (node, or redundant copy) the
provider chosen, the signed bid, the slot's state and its allocations' last known status. It is
written before every step that asks a provider to hold something, so that an orchestrator that
restarts knows whom to tell to let go.
"""

from __future__ import annotations

import enum
import functools
import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, final

import trio

from ..ensemble import Ensemble, parse_data

__all__ = [
    "TERMINAL",
    "Deployment",
    "DeploymentState",
    "delete_row",
    "load_logs",
    "load_rows",
    "row_of",
    "save_logs",
    "write_rows",
]

#: Entries of a deployment's history kept (the oldest are dropped).
_HISTORY: Final = 100


class DeploymentState(enum.Enum):
    """Where a deployment is (NuNet's names)."""

    PREPARING = "Preparing"  # asking for bids and choosing providers
    COMMITTING = "Committing"  # two-phase commit with the chosen providers
    PROVISIONING = "Provisioning"  # starting allocations, in depends_on waves
    RUNNING = "Running"  # everything started; supervised
    FAILED = "Failed"  # gave up, with the reason; everything released
    SHUTTING_DOWN = "ShuttingDown"  # stopping and releasing everything, on request
    COMPLETED = "Completed"  # every task ended, or shut down on request; released


TERMINAL: Final = frozenset({DeploymentState.FAILED, DeploymentState.COMPLETED})


@final
@dataclass(eq=False)
class Deployment:
    """One deployment this node orchestrates (mutable: the orchestrator drives it)."""

    id: str
    ensemble: Ensemble
    state: DeploymentState
    deadline: float
    created_at: float
    updated_at: float
    reason: str = ""
    manifest: dict[str, Any] = field(default_factory=lambda: {"nodes": {}, "history": []})
    #: Set on every news about the deployment (a status push, a poll); waiters renew it.
    changed: trio.Event = field(default_factory=trio.Event)
    #: Cancels the deployment's driving task (for a shutdown).
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @functools.cached_property
    def ensemble_json(self) -> str:
        """The ensemble as stored (it never changes, so it is serialised once)."""
        return json.dumps(self.ensemble.to_dict())

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        nodes: dict[str, dict[str, Any]] = self.manifest.setdefault("nodes", {})
        return nodes

    def note(self, text: str, *, state: DeploymentState | None = None) -> None:
        """Add a line to the deployment's history (in ``state``, default the current one)."""
        history: list[dict[str, Any]] = self.manifest.setdefault("history", [])
        when = (state or self.state).value
        history.append({"time": time.time(), "state": when, "text": text})
        del history[:-_HISTORY]

    def placed(self, slot: str, node: dict[str, Any], why: str) -> None:
        """Remember where a slot was (and how far it got) once it is let go of, so that an
        ended deployment still says which providers ran it."""
        placements: list[dict[str, Any]] = self.manifest.setdefault("placements", [])
        placements.append(
            {
                "node": slot,
                "provider": node["provider"],
                "reached": node.get("reached", node.get("state")),
                "allocations": {
                    name: {k: a.get(k) for k in ("state", "exit_code", "reason", "restarts")}
                    for name, a in node.get("allocations", {}).items()
                },
                "released": time.time(),
                "why": why,
            }
        )
        del placements[:-_HISTORY]

    def touch(self) -> None:
        self.updated_at = time.time()
        self.changed.set()
        self.changed = trio.Event()

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state.value,
            "reason": self.reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deadline": self.deadline,
            "nodes": len(self.ensemble.nodes),
            "allocations": len(self.ensemble.allocations),
            "description": self.ensemble.metadata.get("description", ""),
        }


def row_of(deployment: Deployment, state: DeploymentState | None = None) -> tuple[Any, ...]:
    """The deployment's row (in ``state`` if given, else its own), serialised now: a snapshot
    that later changes to the deployment do not touch."""
    return (
        deployment.id,
        (state or deployment.state).value,
        deployment.ensemble_json,
        json.dumps(deployment.manifest),
        deployment.reason,
        deployment.created_at,
        deployment.updated_at,
        deployment.deadline,
    )


def write_rows(conn: sqlite3.Connection, rows: Iterable[tuple[Any, ...]]) -> None:
    """Insert or update deployment rows made by :func:`row_of`."""
    conn.executemany(
        "INSERT INTO deployments (id, state, ensemble, manifest, reason, created_at, updated_at,"
        " deadline) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
        " state = excluded.state, manifest = excluded.manifest, reason = excluded.reason,"
        " updated_at = excluded.updated_at",
        list(rows),
    )


def delete_row(conn: sqlite3.Connection, id: str) -> bool:
    return conn.execute("DELETE FROM deployments WHERE id = ?", (id,)).rowcount > 0


def load_rows(conn: sqlite3.Connection) -> list[Deployment]:
    """Every deployment in the store, oldest first."""
    found = []
    for row in conn.execute("SELECT * FROM deployments ORDER BY created_at"):
        found.append(
            Deployment(
                id=row["id"],
                ensemble=parse_data(json.loads(row["ensemble"])),
                state=DeploymentState(row["state"]),
                deadline=row["deadline"],
                created_at=row["created_at"],
                updated_at=row["updated_at"],
                reason=row["reason"],
                manifest=json.loads(row["manifest"]),
            )
        )
    return found


def save_logs(
    conn: sqlite3.Connection, id: str, allocation: str, lines: list[dict[str, Any]]
) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO deployment_logs (deployment, allocation, lines) VALUES (?, ?, ?)",
        (id, allocation, json.dumps(lines)),
    )


def load_logs(conn: sqlite3.Connection, id: str) -> dict[str, list[dict[str, Any]]]:
    return {
        row["allocation"]: json.loads(row["lines"])
        for row in conn.execute(
            "SELECT allocation, lines FROM deployment_logs WHERE deployment = ?", (id,)
        )
    }
