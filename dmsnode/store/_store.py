"""The node's SQLite database, used from Trio (DESIGN §3.2).

One writer connection and one reader connection, each used by one worker thread at a time
(``trio.to_thread.run_sync`` under a ``trio.Lock``), so writes are serialised inside the process
and never meet "database is locked"; other processes wait up to ``busy_timeout``.

Durability: WAL with ``synchronous=FULL``, so the WAL is synced on every commit and a commit
that :meth:`Store.write` has returned survives a crash or a power cut. (``NORMAL`` would only
survive a crash of the process, and the node acknowledges state to peers.)
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Final, TypeVar, final

import trio

from ..errors import StoreError
from ._migration import APPLICATION_ID, Migration, migrate
from ._migrations import MIGRATIONS

__all__ = ["STORE_FILENAME", "Store", "open_store"]

T = TypeVar("T")

#: The store's file name inside ``general.work_dir``.
STORE_FILENAME: Final = "dms.sqlite3"

_BUSY_TIMEOUT_S: Final = 10.0


@final
class Store(trio.abc.AsyncResource):
    """An open store. Make one with :meth:`open` (or :func:`open_store`); close it with
    :meth:`aclose` or ``async with``.

    :meth:`write` runs a function in a transaction and returns once it is committed, so
    ``await store.write(...)`` before replying is all it takes for "what a reply acknowledges is
    committed before the reply leaves".
    """

    def __init__(
        self, path: Path, writer: sqlite3.Connection, reader: sqlite3.Connection, version: int
    ) -> None:
        """Private: use :meth:`open`."""
        self._path = path
        self._writer = writer
        self._reader = reader
        self._version = version
        self._write_lock = trio.Lock()
        self._read_lock = trio.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: Path | str, *, migrations: Sequence[Migration] = MIGRATIONS) -> Store:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date.

        Refused with :class:`StoreError` naming the file: not an SQLite database or corrupt,
        another program's database, a schema newer than ``migrations`` knows, a failed migration.
        ``migrations`` is for tests and for code that knows better than the built-in list.
        """
        file = Path(path)
        return await trio.to_thread.run_sync(functools.partial(cls._open_sync, file, migrations))

    @classmethod
    def _open_sync(cls, path: Path, migrations: Sequence[Migration]) -> Store:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory of the store {path}: {exc}") from None
        writer = reader = None
        try:
            writer = _connect(path)
            _check_file(writer, path)
            writer.execute("PRAGMA journal_mode = WAL")
            writer.execute("PRAGMA synchronous = FULL")
            version = migrate(writer, migrations, path)
            reader = _connect(path)
            reader.execute("PRAGMA query_only = ON")
            return cls(path, writer, reader, version)
        except BaseException as exc:
            for conn in (reader, writer):
                if conn is not None:
                    conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(_describe(path, exc)) from None
            raise

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def schema_version(self) -> int:
        """The schema version of the open file (``len(migrations)`` once opened)."""
        return self._version

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a transaction (``BEGIN IMMEDIATE``) and commit; return its result.

        Writes are serialised. If ``fn`` raises, the transaction is rolled back and the exception
        propagates. ``fn`` must not commit or roll back itself. A write that has started runs to
        its end even if the caller is cancelled meanwhile (the cancellation arrives after).
        """
        async with self._write_lock:
            conn = self._live(self._writer)
            return await trio.to_thread.run_sync(
                _transaction, conn, fn, "BEGIN IMMEDIATE", True, self._path
            )

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` on a consistent snapshot of committed data (a read-only connection)
        and return its result. Reads do not wait for writes (WAL)."""
        async with self._read_lock:
            conn = self._live(self._reader)
            return await trio.to_thread.run_sync(_transaction, conn, fn, "BEGIN", False, self._path)

    async def aclose(self) -> None:
        """Close the store after the operations under way end; later ones raise
        :class:`StoreError`. Closing twice is harmless."""
        if self._closed:
            await trio.lowlevel.checkpoint()
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            async with self._write_lock, self._read_lock:
                await trio.to_thread.run_sync(self._close_sync)

    def _close_sync(self) -> None:
        self._reader.close()
        self._writer.close()

    def _live(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the store {self._path} is closed")
        return conn

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"schema v{self._version}"
        return f"<Store {self._path} ({state})>"


@contextlib.asynccontextmanager
async def open_store(
    path: Path | str, *, migrations: Sequence[Migration] = MIGRATIONS
) -> AsyncIterator[Store]:
    """``async with open_store(path) as store:``: :meth:`Store.open`, closed on leaving."""
    store = await Store.open(path, migrations=migrations)
    async with store:
        yield store


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode (isolation_level=None): transactions are begun and ended explicitly.
    # check_same_thread=False: worker threads change, but a lock keeps one at a time.
    conn = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _check_file(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a corrupt database, or an SQLite database that another program owns."""
    problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if problems != ["ok"]:
        raise StoreError(f"{path}: the database is corrupt ({'; '.join(problems)})")
    owner = conn.execute("PRAGMA application_id").fetchone()[0]
    if owner not in (0, APPLICATION_ID):
        raise StoreError(
            f"{path}: an SQLite database of another program (application id {owner:#x}),"
            " not a dmsnode store"
        )


def _describe(path: Path, exc: sqlite3.Error) -> str:
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in text or "malformed" in text):
        return f"{path}: not an SQLite database, or a corrupt one ({text})"
    return f"cannot open the store {path}: {text}"


def _transaction(
    conn: sqlite3.Connection,
    fn: Callable[[sqlite3.Connection], T],
    begin: str,
    commit: bool,
    path: Path,
) -> T:
    """In a worker thread: ``begin``, ``fn(conn)``, then commit (or roll back a read)."""
    conn.execute(begin)
    try:
        result = fn(conn)
        if not conn.in_transaction:
            raise StoreError(
                f"{path}: the function given to the store ended the transaction itself;"
                " it must leave commit and rollback to the store"
            )
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if not commit:
        conn.execute("ROLLBACK")
        return result
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"{path}: the commit failed, nothing was written: {exc}") from None
    return result
