"""The events table: record, list with cursors and kinds, pruning, survival across restarts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from dmsnode.observability import Event, Events
from dmsnode.store import open_store


async def test_record_and_list(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:
        events = Events(store)
        before = time.time_ns() // 1_000_000
        first = await events.record("node.started", {"version": "0.1"})
        second = await events.record("deployment.failed", {"id": "d1", "why": "no bids"}, "error")
        third = await events.record("node.started", {})
        assert first < second < third
        listed = await events.list()
        assert [e.id for e in listed] == [first, second, third]
        failed = listed[1]
        assert failed == Event(second, failed.ts_ms, "deployment.failed", "error", failed.data)
        assert failed.data == {"id": "d1", "why": "no bids"}
        assert before <= failed.ts_ms <= time.time_ns() // 1_000_000
        assert failed.to_dict()["data"] == {"id": "d1", "why": "no bids"}
        assert [e.id for e in await events.list(kind="node.started")] == [first, third]
        assert [e.id for e in await events.list(since_id=first)] == [second, third]
        assert [e.id for e in await events.list(since_id=first, limit=1)] == [second]
        assert [e.id for e in await events.list(limit=2)] == [second, third]  # the newest
        assert await events.list(since_id=third) == []
        assert await events.count() == 3


async def test_events_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with open_store(path) as store:
        event_id = await Events(store).record("onboarded", {"cores": 2})
    async with open_store(path) as store:
        (event,) = await Events(store).list()
        assert (event.id, event.kind, event.data) == (event_id, "onboarded", {"cores": 2})
        # Ids keep growing after a restart, so a client's cursor stays valid.
        assert await Events(store).record("again", {}) > event_id


async def test_recording_prunes_to_keep(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:
        events = Events(store, keep=5)
        ids = [await events.record("tick", {"n": n}) for n in range(12)]
        assert [e.id for e in await events.list(limit=100)] == ids[-5:]
        assert await events.count() == 5


async def test_explicit_prune(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:
        events = Events(store, keep=100)
        ids = [await events.record("tick", {}) for _ in range(10)]
        assert await events.prune(3) == 7
        assert [e.id for e in await events.list()] == ids[-3:]
        assert await events.prune(3) == 0
        assert await events.prune(0) == 3
        assert await events.list() == []


async def test_concurrent_records_all_land_with_distinct_ids(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:
        events = Events(store)
        ids: list[int] = []

        async def record(n: int) -> None:
            ids.append(await events.record("n", {"n": n}))

        async with trio.open_nursery() as nursery:
            for n in range(50):
                nursery.start_soon(record, n)
        assert len(set(ids)) == 50
        assert sorted(e.data["n"] for e in await events.list(limit=1000)) == list(range(50))


async def test_refusals(tmp_path: Path) -> None:
    async with open_store(tmp_path / "s.db") as store:
        events = Events(store)
        with pytest.raises(ValueError, match="unknown event level 'loud'"):
            await events.record("x", {}, level="loud")
        with pytest.raises(ValueError, match="non-empty"):
            await events.record("", {})
        with pytest.raises(TypeError, match="mapping"):
            await events.record("x", [1, 2])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not JSON serializable"):
            await events.record("x", {"o": object()})
        with pytest.raises(ValueError, match="limit"):
            await events.list(limit=0)
        with pytest.raises(ValueError, match="at least 1"):
            Events(store, keep=0)
        assert await events.count() == 0
