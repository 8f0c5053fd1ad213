"""The node's state in SQLite: :class:`Store` (transactions from Trio, schema migrations) and
:class:`KeyValue` (small JSON values). See docs/config.md, "The store"."""

from __future__ import annotations

from ..errors import StoreError
from ._kv import KeyValue
from ._migration import APPLICATION_ID, Migration, Step, split_sql
from ._migrations import MIGRATIONS, SCHEMA_VERSION
from ._store import STORE_FILENAME, Store, open_store

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STORE_FILENAME",
    "KeyValue",
    "Migration",
    "Step",
    "Store",
    "StoreError",
    "open_store",
    "split_sql",
]
