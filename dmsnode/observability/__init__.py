"""What the node tells its operator: structured logs, Prometheus metrics and the events table
(DESIGN §3.6)."""

from __future__ import annotations

from ._events import DEFAULT_KEEP, Event, Events
from ._logging import JsonFormatter, TextFormatter, configure_logging, set_log_level
from ._metrics import (
    CONTENT_TYPE,
    DEFAULT_BUCKETS,
    Collector,
    Counter,
    Gauge,
    Histogram,
    MetricFamily,
    MetricType,
    Registry,
    Sample,
    mapping_collector,
)
from ._node_metrics import NodeMetrics

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "DEFAULT_KEEP",
    "Collector",
    "Counter",
    "Event",
    "Events",
    "Gauge",
    "Histogram",
    "JsonFormatter",
    "MetricFamily",
    "MetricType",
    "NodeMetrics",
    "Registry",
    "Sample",
    "TextFormatter",
    "configure_logging",
    "mapping_collector",
    "set_log_level",
]
