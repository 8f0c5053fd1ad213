"""The SQLite store on real files: transactions, restarts, migrations, refusals, concurrency."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from dmsnode.errors import StoreError
from dmsnode.store import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    KeyValue,
    Migration,
    Store,
    open_store,
    split_sql,
)


def put(key: str, value: str):  # type: ignore[no-untyped-def]
    def fn(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO kv (key, value) VALUES (?, ?)", (key, value))

    return fn


def all_kv(conn: sqlite3.Connection) -> dict[str, str]:
    return {row["key"]: row["value"] for row in conn.execute("SELECT key, value FROM kv")}


async def test_open_creates_the_schema_with_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "work" / "dms.sqlite3"  # the directory is created
    async with open_store(path) as store:
        assert store.path == path
        assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)

        def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int, int, int]:
            return (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA foreign_keys").fetchone()[0],
                conn.execute("PRAGMA user_version").fetchone()[0],
                conn.execute("PRAGMA application_id").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
            )

        mode, fks, version, app_id, _ = await store.read(pragmas)
        assert (mode, fks, version, app_id) == ("wal", 1, SCHEMA_VERSION, APPLICATION_ID)
        assert (await store.write(pragmas))[4] == 2  # FULL, on the connection that commits
        tables = await store.read(
            lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
        )
        assert {"events", "kv"} <= tables


async def test_write_then_read_and_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "dms.sqlite3"
    store = await Store.open(path)
    assert await store.write(lambda c: c.execute("SELECT 41 + 1").fetchone()[0]) == 42
    await store.write(put("a", '"1"'))
    assert await store.read(all_kv) == {"a": '"1"'}
    await store.aclose()
    await store.aclose()  # harmless
    with pytest.raises(StoreError, match="is closed"):
        await store.read(all_kv)
    # A restart: a new process opens the file again and finds what was acknowledged.
    async with await Store.open(path) as again:
        assert await again.read(all_kv) == {"a": '"1"'}
    # So does a plain sqlite3 connection: the write is in the file, not only in memory.
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT value FROM kv WHERE key = 'a'").fetchone() == ('"1"',)
    finally:
        conn.close()


async def test_a_failing_function_rolls_back(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:

        def half_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO kv VALUES ('x', '1')")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await store.write(half_then_fail)
        with pytest.raises(sqlite3.IntegrityError):
            await store.write(lambda c: [put("y", "1")(c), put("y", "2")(c)])
        assert await store.read(all_kv) == {}
        await store.write(put("z", "1"))  # the connection is usable afterwards
        assert await store.read(all_kv) == {"z": "1"}


async def test_a_function_may_not_end_the_transaction(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:

        def commits(conn: sqlite3.Connection) -> None:
            put("x", "1")(conn)
            conn.execute("COMMIT")

        with pytest.raises(StoreError, match="ended the transaction"):
            await store.write(commits)
        await store.write(put("y", "1"))


async def test_reads_cannot_write(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await store.read(put("x", "1"))
        assert await store.read(all_kv) == {}


async def test_concurrent_writers_all_land(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:

        async def writer(n: int) -> None:
            for i in range(10):
                await store.write(put(f"{n}-{i}", str(i)))
                if i % 3 == 0:
                    assert f"{n}-{i}" in await store.read(all_kv)

        async with trio.open_nursery() as nursery:
            for n in range(30):
                nursery.start_soon(writer, n)
        assert len(await store.read(all_kv)) == 300


async def test_a_second_store_on_the_same_file_sees_commits(tmp_path: Path) -> None:
    # Two processes (the daemon and a CLI command, say) on one file.
    path = tmp_path / "s.db"
    async with open_store(path) as one, open_store(path) as two:
        await one.write(put("a", "1"))
        assert await two.read(all_kv) == {"a": "1"}
        await two.write(put("b", "2"))
        assert await one.read(all_kv) == {"a": "1", "b": "2"}


async def test_garbage_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "dms.sqlite3"
    path.write_bytes(b"this is not a database, just some text that is long enough" * 100)
    with pytest.raises(StoreError, match="not an SQLite database") as info:
        await Store.open(path)
    assert str(path) in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_a_truncated_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dms.sqlite3"
    async with open_store(path) as store:
        await store.write(lambda c: [put(str(i), "x" * 500)(c) for i in range(200)])
    data = path.read_bytes()
    path.write_bytes(data[:4096] + b"\xff" * 4096 + data[8192:])  # overwrite page 2
    with pytest.raises(StoreError, match=r"corrupt|not an SQLite") as info:
        await Store.open(path)
    assert str(path) in str(info.value)


async def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the store"):
        await Store.open(tmp_path)


async def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a dmsnode store"):
        await Store.open(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 7")
    conn.execute("DROP TABLE t")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="another program"):
        await Store.open(path)


V1 = Migration(1, "t", ("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT);",))
V2 = Migration(
    2,
    "add y to t, and a table with a trigger",
    (
        """
        ALTER TABLE t ADD COLUMN y INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE log (msg TEXT);  -- a comment; with a semicolon
        CREATE TRIGGER t_insert AFTER INSERT ON t BEGIN
            INSERT INTO log VALUES ('inserted; ' || new.x);
        END;
        """,
        lambda conn: conn.execute("UPDATE t SET y = length(x)"),
    ),
)


async def test_migrations_from_an_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.touch()  # an empty file is an empty SQLite database
    async with open_store(path, migrations=[V1, V2]) as store:
        assert store.schema_version == 2
        await store.write(lambda c: c.execute("INSERT INTO t (x) VALUES ('abc')"))
        assert await store.read(lambda c: c.execute("SELECT msg FROM log").fetchall()[0][0]) == (
            "inserted; abc"
        )


async def test_migration_from_an_older_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    # A version-1 database made by hand, as an older dmsnode would have left it.
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT)")
    conn.execute("INSERT INTO t (x) VALUES ('hello')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    async with open_store(path, migrations=[V1, V2]) as store:
        assert store.schema_version == 2
        rows = await store.read(lambda c: c.execute("SELECT x, y FROM t").fetchall())
        assert [tuple(r) for r in rows] == [("hello", 5)]
    async with open_store(path, migrations=[V1, V2]) as store:  # nothing left to do
        assert store.schema_version == 2


async def test_a_failing_migration_leaves_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with open_store(path, migrations=[V1]):
        pass
    bad = Migration(2, "broken", ("CREATE TABLE u (z);", "THIS IS NOT SQL;"))
    with pytest.raises(StoreError, match=r"migration to version 2 \(broken\) failed") as info:
        await Store.open(path, migrations=[V1, bad])
    assert str(path) in str(info.value)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert "u" not in names  # the whole step was rolled back
    finally:
        conn.close()


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with open_store(path, migrations=[V1, V2]):
        pass
    with pytest.raises(StoreError, match="version 2, newer than this dmsnode knows") as info:
        await Store.open(path, migrations=[V1])
    assert str(path) in str(info.value)


async def test_a_bad_migration_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="out of order"):
        await Store.open(tmp_path / "s.db", migrations=[V2])


def test_split_sql() -> None:
    assert split_sql("SELECT 1; SELECT ';'  ;\n\n") == ["SELECT 1;", "SELECT ';'  ;"]
    assert split_sql("") == []
    with pytest.raises(ValueError, match="incomplete"):
        split_sql("SELECT 1; SELECT 'unterminated")


async def test_key_value(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:
        kv = KeyValue(store)
        assert await kv.get("missing", default=3) == 3
        await kv.set("onboarded", {"cores": 2, "gpus": [0, 1]})
        await kv.set("onboarded", {"cores": 4})
        assert await kv.get("onboarded") == {"cores": 4}
        assert await kv.delete("onboarded") is True
        assert await kv.delete("onboarded") is False
        with pytest.raises(ValueError, match="not JSON compliant"):
            await kv.set("x", float("nan"))
