"""The Prometheus registry: exact text for small registries, escaping, name rules."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter as Tally

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dmsnode.observability import (
    CONTENT_TYPE,
    MetricFamily,
    Registry,
    Sample,
    mapping_collector,
)
from dmsnode.observability._metrics import escape_label_value, format_value


def test_empty_registry_renders_nothing() -> None:
    assert Registry().render() == ""
    assert CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"


def test_golden_counter_and_gauge() -> None:
    registry = Registry()
    requests = registry.counter("http_requests_total", "Requests served.", ["method", "code"])
    peers = registry.gauge("dms_peers", "Peers connected.\nNow.")
    registry.counter("dms_starts_total", "Starts.")
    requests.labels(method="GET", code=200).inc()
    requests.labels(method="GET", code=200).inc(2)
    requests.labels(code="500", method="POST").inc(0.5)
    peers.set(3)
    peers.dec()
    assert registry.render() == (
        "# HELP http_requests_total Requests served.\n"
        "# TYPE http_requests_total counter\n"
        'http_requests_total{method="GET",code="200"} 3\n'
        'http_requests_total{method="POST",code="500"} 0.5\n'
        "# HELP dms_peers Peers connected.\\nNow.\n"
        "# TYPE dms_peers gauge\n"
        "dms_peers 2\n"
        "# HELP dms_starts_total Starts.\n"
        "# TYPE dms_starts_total counter\n"
        "dms_starts_total 0\n"
    )


def test_golden_histogram() -> None:
    registry = Registry()
    latency = registry.histogram("rpc_seconds", "RPC latency.", buckets=[0.1, 1, 2.5])
    for value in (0.05, 0.1, 0.7, 3, 100):
        latency.observe(value)
    sized = registry.histogram("size_bytes", "Sizes.", [10, math.inf], labelnames=["kind"])
    sized.labels(kind="a").observe(5)
    assert registry.render() == (
        "# HELP rpc_seconds RPC latency.\n"
        "# TYPE rpc_seconds histogram\n"
        'rpc_seconds_bucket{le="0.1"} 2\n'
        'rpc_seconds_bucket{le="1"} 3\n'
        'rpc_seconds_bucket{le="2.5"} 3\n'
        'rpc_seconds_bucket{le="+Inf"} 5\n'
        "rpc_seconds_sum 103.85\n"
        "rpc_seconds_count 5\n"
        "# HELP size_bytes Sizes.\n"
        "# TYPE size_bytes histogram\n"
        'size_bytes_bucket{kind="a",le="10"} 1\n'
        'size_bytes_bucket{kind="a",le="+Inf"} 1\n'
        'size_bytes_sum{kind="a"} 5\n'
        'size_bytes_count{kind="a"} 1\n'
    )


def test_collectors_run_at_scrape_time() -> None:
    registry = Registry()
    counters: Tally[str] = Tally()
    registry.register_collector(
        mapping_collector(
            "nuactor_events_total", "Actor system counts.", lambda: counters, label="event"
        )
    )
    assert registry.render() == (
        "# HELP nuactor_events_total Actor system counts.\n# TYPE nuactor_events_total counter\n"
    )
    counters["envelopes_out"] += 2
    counters["envelopes_in"] += 1
    assert registry.render().splitlines()[2:] == [
        'nuactor_events_total{event="envelopes_in"} 1',
        'nuactor_events_total{event="envelopes_out"} 2',
    ]


def test_a_failing_or_bad_collector_does_not_break_the_scrape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = Registry()
    registry.gauge("up", "Up.").set(1)

    def broken() -> list[MetricFamily]:
        raise RuntimeError("boom")

    def bad_name() -> list[MetricFamily]:
        return [MetricFamily("bad-name", "x", "gauge", [Sample("bad-name", {}, 1)])]

    def duplicate() -> list[MetricFamily]:
        return [MetricFamily("up", "again", "gauge", [Sample("up", {}, 2)])]

    for collector in (broken, bad_name, duplicate):
        registry.register_collector(collector)
    with caplog.at_level(logging.ERROR, logger="dmsnode.metrics"):
        assert registry.render() == "# HELP up Up.\n# TYPE up gauge\nup 1\n"
    assert len(caplog.records) == 3
    registry.unregister_collector(broken)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (3.0, "3"),
        (0.25, "0.25"),
        (-1.5, "-1.5"),
        (True, "1"),
        (2**70, str(2**70)),
        (1e20, "1e+20"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


_LABEL_VALUE = re.compile(r'"((?:[^"\\\n]|\\["\\n])*)"')


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


@given(st.text())
def test_label_values_round_trip_through_escaping(value: str) -> None:
    escaped = escape_label_value(value)
    assert "\n" not in escaped
    assert _LABEL_VALUE.fullmatch(f'"{escaped}"')  # no unescaped quote or newline inside
    assert _unescape(escaped) == value


@given(st.lists(st.text(), min_size=1, max_size=5, unique=True))
def test_rendered_lines_parse_back(values: list[str]) -> None:
    registry = Registry()
    gauge = registry.gauge("g", "G.", ["v"])
    for index, value in enumerate(values):
        gauge.labels(v=value).set(index)
    lines = registry.render().split("\n")
    assert lines[-1] == "" and len(lines) == 3 + len(values)
    parsed = {}
    for line in lines[2:-1]:
        match = re.fullmatch(r'g\{v=("(?:[^"\\\n]|\\["\\n])*")\} (\d+)', line)
        assert match, line
        parsed[_unescape(match.group(1)[1:-1])] = int(match.group(2))
    assert parsed == {value: index for index, value in enumerate(values)}


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "é"])
def test_bad_metric_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid metric name"):
        Registry().counter(name, "x")


@pytest.mark.parametrize("label", ["", "1a", "a:b", "__reserved", "a-b"])
def test_bad_label_names(label: str) -> None:
    with pytest.raises(ValueError, match="invalid label name"):
        Registry().gauge("ok", "x", [label])


def test_other_refusals() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "C.", ["a"])
    with pytest.raises(ValueError, match="already registered"):
        registry.gauge("c_total", "again")
    hist = registry.histogram("h", "H.", [1])
    with pytest.raises(ValueError, match="'h_count' is already registered"):
        registry.counter("h_count", "clash with the histogram's samples")
    with pytest.raises(ValueError, match="reserved"):
        registry.histogram("h2", "H.", labelnames=["le"])
    with pytest.raises(ValueError, match="repeated"):
        registry.gauge("g", "G.", ["a", "a"])
    with pytest.raises(ValueError, match="strictly increasing"):
        registry.histogram("h3", "H.", [1, 1])
    with pytest.raises(ValueError, match="takes the labels"):
        counter.labels(b="x")
    with pytest.raises(ValueError, match="has labels"):
        counter.inc()
    with pytest.raises(ValueError, match="only goes up"):
        counter.labels(a="x").inc(-1)
    with pytest.raises(ValueError, match="NaN"):
        hist.observe(math.nan)


def test_remove_a_child() -> None:
    registry = Registry()
    gauge = registry.gauge("g", "G.", ["d"])
    gauge.labels(d="1").set(1)
    gauge.labels(d="2").set(2)
    gauge.remove(d="1")
    assert registry.render().splitlines()[2:] == ['g{d="2"} 2']


def test_updates_from_threads_are_not_lost() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "C.")
    hist = registry.histogram("h", "H.", [1])

    def work() -> None:
        for _ in range(2000):
            counter.inc()
            hist.observe(0.5)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.value == 16000
    assert "h_count 16000" in registry.render()
