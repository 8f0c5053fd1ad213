"""A small Prometheus registry (no dependency): counters, gauges, histograms, collectors, and
the text exposition format 0.0.4 that ``/metrics`` serves.

Metric names match ``[a-zA-Z_:][a-zA-Z0-9_:]*`` and label names ``[a-zA-Z_][a-zA-Z0-9_]*``
(not starting with ``__``), as Prometheus requires; a name is refused when it is registered, not
when it is scraped. Updates are thread-safe (a lock per metric), so store threads may use them.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypeVar, final

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_BUCKETS",
    "Collector",
    "Counter",
    "Gauge",
    "Histogram",
    "MetricFamily",
    "MetricType",
    "Registry",
    "Sample",
    "escape_help",
    "escape_label_value",
    "format_value",
    "mapping_collector",
]

log = logging.getLogger("dmsnode.metrics")

#: The ``Content-Type`` of :meth:`Registry.render`'s output.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
#: Prometheus' default histogram buckets (seconds).
DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)

MetricType = Literal["counter", "gauge", "histogram", "untyped"]

_METRIC_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


# --- values and text ------------------------------------------------------------------------------


def format_value(value: float) -> str:
    """A sample value or ``le`` bound as Prometheus writes it: ``+Inf``, ``-Inf``, ``NaN``,
    integral values without a fraction (``3``), others as Python's shortest repr (``0.25``)."""
    if isinstance(value, int):  # bool included: True is 1
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def escape_label_value(value: str) -> str:
    """Escape backslash, double quote and newline, as the text format requires in labels."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Escape backslash and newline, as the text format requires in ``# HELP``."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
        raise ValueError(f"invalid metric name {name!r}: it must match [a-zA-Z_:][a-zA-Z0-9_:]*")


def _check_label_names(metric: str, names: Iterable[str], reserved: Sequence[str] = ()) -> None:
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ValueError(
                f"invalid label name {name!r} for {metric}: it must match [a-zA-Z_][a-zA-Z0-9_]*"
                " and not start with __"
            )
        if name in reserved:
            raise ValueError(f"label name {name!r} is reserved in {metric}")
        if name in seen:
            raise ValueError(f"label name {name!r} repeated in {metric}")
        seen.add(name)


# --- samples, families, collectors ----------------------------------------------------------------


@final
@dataclass(frozen=True)
class Sample:
    """One line of output: ``name{labels} value``."""

    name: str
    labels: Mapping[str, str]
    value: float


@final
@dataclass(frozen=True)
class MetricFamily:
    """A metric with its HELP and TYPE and its samples (what collectors return)."""

    name: str
    help: str
    type: MetricType
    samples: Sequence[Sample] = field(default_factory=tuple)


#: Called at each scrape; returns families computed then (``system.counters``, say).
Collector = Callable[[], Iterable[MetricFamily]]


def mapping_collector(
    name: str,
    help: str,
    source: Callable[[], Mapping[str, float]],
    *,
    label: str,
    type: MetricType = "counter",
) -> Collector:
    """A collector exposing a mapping as one metric with one label, read at scrape time:
    ``mapping_collector("nuactor_events_total", "...", lambda: system.counters, label="event")``.
    """
    _check_name(name)
    _check_label_names(name, [label])

    def collect() -> list[MetricFamily]:
        values = sorted(dict(source()).items())
        return [
            MetricFamily(name, help, type, [Sample(name, {label: str(k)}, v) for k, v in values])
        ]

    return collect


# --- metrics --------------------------------------------------------------------------------------

ChildT = TypeVar("ChildT")


class _Metric(Generic[ChildT]):
    """What counters, gauges and histograms share: a name, help, label names, and children."""

    type: MetricType

    def __init__(self, name: str, help: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.help = help
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], ChildT] = {}
        if not self.labelnames:
            self._children[()] = self._new_child()

    def _new_child(self) -> ChildT:
        raise NotImplementedError

    def _key(self, values: Mapping[str, object]) -> tuple[str, ...]:
        if set(values) != set(self.labelnames):
            raise ValueError(
                f"{self.name} takes the labels ({', '.join(self.labelnames)}),"
                f" got ({', '.join(values)})"
            )
        return tuple(str(values[name]) for name in self.labelnames)

    def labels(self, **values: object) -> ChildT:
        """The child for these label values (all of ``labelnames``), created on first use."""
        key = self._key(values)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._new_child()
            return child

    def remove(self, **values: object) -> None:
        """Forget the child for these label values (a finished deployment, say)."""
        key = self._key(values)
        with self._lock:
            self._children.pop(key, None)

    def _only(self) -> ChildT:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels; use .labels(...) first")
        return self._children[()]

    def _items(self) -> list[tuple[dict[str, str], ChildT]]:
        with self._lock:
            items = sorted(self._children.items())
        return [(dict(zip(self.labelnames, key, strict=True)), child) for key, child in items]

    def sample_names(self) -> tuple[str, ...]:
        return (self.name,)

    def collect(self) -> MetricFamily:
        raise NotImplementedError


@final
class _Value:
    """The value of a counter or gauge child."""

    def __init__(self, lock: threading.Lock, *, monotonic: bool) -> None:
        self._lock = lock
        self._monotonic = monotonic
        self._value = 0.0

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (for a counter, never negative)."""
        if self._monotonic and not amount >= 0:
            raise ValueError(f"a counter only goes up; cannot add {amount!r}")
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1) -> None:
        """Subtract ``amount`` (gauges only)."""
        if self._monotonic:
            raise ValueError("a counter only goes up")
        with self._lock:
            self._value -= amount

    def set(self, value: float) -> None:
        """Set the value (gauges only)."""
        if self._monotonic:
            raise ValueError("a counter cannot be set")
        with self._lock:
            self._value = float(value)

    @property
    def value(self) -> float:
        return self._value


class _Scalar(_Metric[_Value]):
    """What counters and gauges share: one number per child."""

    @property
    def value(self) -> float:
        """The value of an unlabelled metric."""
        return self._only().value

    def collect(self) -> MetricFamily:
        samples = [Sample(self.name, labels, child.value) for labels, child in self._items()]
        return MetricFamily(self.name, self.help, self.type, samples)


@final
class Counter(_Scalar):
    """A value that only goes up (requests served, bytes sent)."""

    type: MetricType = "counter"

    def _new_child(self) -> _Value:
        return _Value(self._lock, monotonic=True)

    def inc(self, amount: float = 1) -> None:
        """Add ``amount`` (not negative) to an unlabelled counter."""
        self._only().inc(amount)


@final
class Gauge(_Scalar):
    """A value that goes up and down (peers connected, memory free)."""

    type: MetricType = "gauge"

    def _new_child(self) -> _Value:
        return _Value(self._lock, monotonic=False)

    def inc(self, amount: float = 1) -> None:
        self._only().inc(amount)

    def dec(self, amount: float = 1) -> None:
        self._only().dec(amount)

    def set(self, value: float) -> None:
        self._only().set(value)


@final
class _Buckets:
    """The observations of a histogram child: per-bucket counts, their sum and number."""

    def __init__(self, lock: threading.Lock, bounds: tuple[float, ...]) -> None:
        self._lock = lock
        self._bounds = bounds
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._count = 0

    def observe(self, value: float) -> None:
        """Record one observation (NaN is refused)."""
        if math.isnan(value):
            raise ValueError("cannot observe NaN")
        index = bisect.bisect_left(self._bounds, value)  # the first bound >= value
        with self._lock:
            self._counts[index] += 1
            self._sum += value
            self._count += 1

    def snapshot(self) -> tuple[list[int], float, int]:
        with self._lock:
            return list(self._counts), self._sum, self._count


@final
class Histogram(_Metric[_Buckets]):
    """Observations counted in cumulative buckets (``le``), with their sum and count."""

    type: MetricType = "histogram"

    def __init__(
        self, name: str, help: str, buckets: Sequence[float], labelnames: Sequence[str]
    ) -> None:
        bounds = [float(b) for b in buckets]
        if not bounds or any(math.isnan(b) for b in bounds):
            raise ValueError(f"{name}: a histogram needs at least one bucket bound, and no NaN")
        if any(b >= c for b, c in itertools.pairwise(bounds)):
            raise ValueError(f"{name}: histogram buckets must be strictly increasing")
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.buckets = tuple(bounds)
        super().__init__(name, help, labelnames)

    def _new_child(self) -> _Buckets:
        return _Buckets(self._lock, self.buckets)

    def observe(self, value: float) -> None:
        self._only().observe(value)

    def sample_names(self) -> tuple[str, ...]:
        return (self.name, f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")

    def collect(self) -> MetricFamily:
        samples: list[Sample] = []
        for labels, child in self._items():
            counts, total, count = child.snapshot()
            cumulative = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                cumulative += n
                le = {**labels, "le": format_value(bound)}
                samples.append(Sample(f"{self.name}_bucket", le, cumulative))
            samples.append(Sample(f"{self.name}_sum", labels, total))
            samples.append(Sample(f"{self.name}_count", labels, count))
        return MetricFamily(self.name, self.help, self.type, samples)


# --- the registry ---------------------------------------------------------------------------------


@final
class Registry:
    """The metrics of one node, rendered for a scrape by :meth:`render`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: list[_Metric[Any]] = []
        self._names: set[str] = set()
        self._collectors: list[Collector] = []

    def _add(self, metric: _Metric[Any]) -> None:
        with self._lock:
            taken = self._names.intersection(metric.sample_names())
            if taken:
                raise ValueError(f"metric name {sorted(taken)[0]!r} is already registered")
            self._names.update(metric.sample_names())
            self._metrics.append(metric)

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        """Register a counter (by convention its name ends in ``_total``)."""
        _check_name(name)
        _check_label_names(name, labelnames)
        metric = Counter(name, help, labelnames)
        self._add(metric)
        return metric

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        """Register a gauge."""
        _check_name(name)
        _check_label_names(name, labelnames)
        metric = Gauge(name, help, labelnames)
        self._add(metric)
        return metric

    def histogram(
        self,
        name: str,
        help: str,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        labelnames: Sequence[str] = (),
    ) -> Histogram:
        """Register a histogram; ``+Inf`` is added to ``buckets`` if missing."""
        _check_name(name)
        _check_label_names(name, labelnames, reserved=("le",))
        metric = Histogram(name, help, buckets, labelnames)
        self._add(metric)
        return metric

    def register_collector(self, collector: Collector) -> None:
        """Call ``collector`` at every scrape and include the families it returns."""
        with self._lock:
            self._collectors.append(collector)

    def unregister_collector(self, collector: Collector) -> None:
        with self._lock:
            self._collectors.remove(collector)

    def collect(self) -> list[MetricFamily]:
        """Every family: registered metrics in registration order, then the collectors'.

        A collector that raises, or returns a bad or already used name, is logged and left out
        of this scrape rather than failing it.
        """
        with self._lock:
            metrics = list(self._metrics)
            collectors = list(self._collectors)
            names = set(self._names)
        families = [metric.collect() for metric in metrics]
        for collector in collectors:
            try:
                produced = list(collector())
            except Exception:
                log.exception("metrics collector %r failed; left out of this scrape", collector)
                continue
            for family in produced:
                problem = _family_problem(family, names)
                if problem:
                    log.error("metrics collector %r: %s; left out", collector, problem)
                    continue
                names.add(family.name)
                families.append(family)
        return families

    def render(self) -> str:
        """The text exposition format 0.0.4 (serve it with :data:`CONTENT_TYPE`)."""
        lines: list[str] = []
        for family in self.collect():
            lines.append(f"# HELP {family.name} {escape_help(family.help)}")
            lines.append(f"# TYPE {family.name} {family.type}")
            for sample in family.samples:
                lines.append(_sample_line(sample))
        return "\n".join(lines) + "\n" if lines else ""


def _sample_line(sample: Sample) -> str:
    if not sample.labels:
        return f"{sample.name} {format_value(sample.value)}"
    labels = ",".join(f'{k}="{escape_label_value(str(v))}"' for k, v in sample.labels.items())
    return f"{sample.name}{{{labels}}} {format_value(sample.value)}"


def _family_problem(family: MetricFamily, taken: set[str]) -> str | None:
    try:
        _check_name(family.name)
        for sample in family.samples:
            _check_name(sample.name)
            _check_label_names(sample.name, sample.labels)
            if not sample.name.startswith(family.name):
                return f"sample {sample.name!r} does not belong to family {family.name!r}"
    except ValueError as exc:
        return str(exc)
    if family.name in taken:
        return f"metric name {family.name!r} is already used"
    return None
