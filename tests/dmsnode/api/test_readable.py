"""The readable routes: health, status, peers, capabilities, events, metrics, and the request
metrics hook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .conftest import Api, running_node


@dataclass
class FakeEvent:
    id: int
    ts_ms: int
    kind: str
    level: str
    data: Any


class FakeEvents:
    def __init__(self) -> None:
        self.rows = [
            FakeEvent(1, 1000, "node.started", "info", {}),
            FakeEvent(2, 2000, "peer.connected", "info", {"did": "did:key:z6Mk..."}),
            FakeEvent(3, 3000, "node.started", "info", {}),
        ]
        self.calls: list[dict[str, Any]] = []

    async def list(
        self, *, since_id: int | None = None, kind: str | None = None, limit: int = 100
    ) -> list[FakeEvent]:
        self.calls.append({"since_id": since_id, "kind": kind, "limit": limit})
        rows = [r for r in self.rows if (since_id is None or r.id > since_id)]
        rows = [r for r in rows if kind is None or r.kind == kind]
        return rows[:limit]


class FakeRegistry:
    def render(self) -> str:
        return "# TYPE dms_up gauge\ndms_up 1\n"


async def test_health(api: Api) -> None:
    reply = await api.client.get("/health")
    assert reply.status == 200
    assert reply.json() == {"status": "ok", "did": api.node.did}


async def test_status_is_the_full_status(api: Api) -> None:
    status = (await api.client.get("/api/v1/node/status")).json()
    assert status["did"] == api.node.did
    assert status["api"] == api.url
    assert status["addresses"] == api.node.network.addresses
    assert "/dms/test/echo" in status["behaviours"]


async def test_peers(api: Api) -> None:
    assert (await api.client.get("/api/v1/peers")).json() == []
    async with running_node(api.user) as other:
        await api.node.network.connect(other.network.addresses[0])
        peers = (await api.client.get("/api/v1/peers")).json()
        assert [p["did"] for p in peers] == [other.did]
        assert peers[0]["connected"] is True


async def test_capabilities(api: Api) -> None:
    anchors = (await api.client.get("/api/v1/capabilities")).json()
    assert len(anchors) == 1
    assert anchors[0]["kind"] == "root"
    assert anchors[0]["aud"] == api.user.did
    assert anchors[0]["cmd"] == "/"


async def test_events_and_metrics_are_503_without_a_source(api: Api) -> None:
    api.node.events = None  # type: ignore[attr-defined]
    api.node.metrics = None  # type: ignore[attr-defined]
    for path in ("/api/v1/events", "/metrics"):
        reply = await api.client.get(path)
        assert reply.status == 503
        assert reply.json()["error"] == "Unavailable"
        assert reply.json()["detail"]


async def test_events(api: Api) -> None:
    events = FakeEvents()
    api.node.events = events  # type: ignore[attr-defined]
    everything = (await api.client.get("/api/v1/events")).json()
    assert [e["id"] for e in everything["events"]] == [1, 2, 3]
    assert everything["events"][1] == {
        "id": 2,
        "ts_ms": 2000,
        "kind": "peer.connected",
        "level": "info",
        "data": {"did": "did:key:z6Mk..."},
    }
    assert everything["next_since"] == 3
    assert events.calls[-1] == {"since_id": None, "kind": None, "limit": 100}

    page = (await api.client.get("/api/v1/events?since=1&kind=node.started&limit=5")).json()
    assert [e["id"] for e in page["events"]] == [3]
    assert events.calls[-1] == {"since_id": 1, "kind": "node.started", "limit": 5}

    empty = (await api.client.get("/api/v1/events?since=3")).json()
    assert empty == {"events": [], "next_since": 3}


async def test_event_query_parameters_are_checked(api: Api) -> None:
    api.node.events = FakeEvents()  # type: ignore[attr-defined]
    for query, name in (
        ("since=x", "since"),
        ("since=-1", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
    ):
        reply = await api.client.get(f"/api/v1/events?{query}")
        assert reply.status == 400, query
        assert reply.json()["error"] == "BadRequest"
        assert f"'{name}'" in reply.json()["detail"]


async def test_metrics(api: Api) -> None:
    api.node.metrics = FakeRegistry()  # type: ignore[attr-defined]
    reply = await api.client.get("/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert reply.body == b"# TYPE dms_up gauge\ndms_up 1\n"


async def test_requests_are_observed_by_route_method_and_status(api: Api) -> None:
    seen: list[tuple[str, str, int, float]] = []
    api.node.observe_request = lambda *args: seen.append(args)  # type: ignore[attr-defined]
    await api.client.get("/health")
    await api.client.post("/api/v1/actor/invoke", {})
    await api.client.get("/random/path/123")
    await api.client.get("/api/v1/actor/invoke")
    assert [s[:3] for s in seen] == [
        ("/health", "GET", 200),
        ("/api/v1/actor/invoke", "POST", 400),
        ("unmatched", "GET", 404),
        ("unmatched", "GET", 405),
    ]
    assert all(s[3] >= 0 for s in seen)


async def test_a_broken_observer_does_not_break_requests(api: Api) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("registry gone")

    api.node.observe_request = broken  # type: ignore[attr-defined]
    assert (await api.client.get("/health")).status == 200
