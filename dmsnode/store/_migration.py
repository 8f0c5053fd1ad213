"""Numbered schema migrations and the code that applies them (the list itself is in
``_migrations.py``).

The schema version is ``PRAGMA user_version``: 0 for a new file, N once migration N is applied.
Each migration runs in its own ``BEGIN IMMEDIATE`` transaction that also sets the version, so a
crash or a failing step leaves the file at the previous version, and two processes opening the
same file never apply a step twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, final

from ..errors import StoreError

__all__ = ["APPLICATION_ID", "Migration", "Step", "migrate", "split_sql"]

#: ``PRAGMA application_id`` of a dmsnode store ("DMS1"), so another program's file is refused.
APPLICATION_ID: Final = 0x444D5331

#: A step is an SQL script (any number of statements) or a function given the connection.
Step = str | Callable[[sqlite3.Connection], None]


@final
@dataclass(frozen=True)
class Migration:
    """Schema version ``version``: the steps that bring version ``version - 1`` to it."""

    version: int
    description: str
    steps: tuple[Step, ...]


def split_sql(script: str) -> list[str]:
    """The statements of an SQL script (``sqlite3`` executes one at a time; ``executescript``
    would commit our transaction). Semicolons inside strings and trigger bodies are respected."""
    statements: list[str] = []
    buffer = ""
    pieces = script.split(";")
    for index, piece in enumerate(pieces):
        buffer += piece if index == len(pieces) - 1 else piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement at the end of a migration: {buffer.strip()!r}")
    return statements


def check_migrations(migrations: Sequence[Migration]) -> None:
    """Refuse a list that is not exactly versions 1, 2, ..., N in order."""
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise ValueError(
                f"migration list out of order: found version {migration.version} where"
                f" {expected} was expected"
            )


def _version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], path: Path) -> int:
    """Bring the database to ``len(migrations)``, one transaction per step; return the version.

    ``conn`` must be in autocommit mode (``isolation_level=None``). A database newer than the
    list, or one that belongs to another program, is refused with :class:`StoreError`.
    """
    check_migrations(migrations)
    latest = len(migrations)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _version(conn)
            if version > latest:
                raise StoreError(
                    f"{path}: the store's schema is version {version}, newer than this dmsnode"
                    f" knows (up to {latest}); run a newer dmsnode, or move the file away to"
                    " start afresh"
                )
            if version == latest:
                conn.execute("ROLLBACK")
                return version
            if version == 0:
                _claim(conn, path)
            migration = migrations[version]
            for step in migration.steps:
                if isinstance(step, str):
                    for statement in split_sql(step):
                        conn.execute(statement)
                else:
                    step(conn)
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(
                    f"{path}: schema migration to version {version + 1}"
                    f" ({migrations[version].description}) failed: {exc}"
                ) from None
            raise


def _claim(conn: sqlite3.Connection, path: Path) -> None:
    """Mark a new database as dmsnode's, refusing one that already holds someone else's data."""
    tables = conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
    ).fetchone()[0]
    if tables:
        raise StoreError(
            f"{path}: an SQLite database with tables but no dmsnode schema version;"
            " it is not a dmsnode store"
        )
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
