"""Measuring on a shared, noisy machine: interleave subject and baseline, report medians.

A benchmark that runs its subject for ten seconds and then its baseline for ten seconds
measures whatever else the machine did in between. Here both run in short alternating batches
(order swapped every round), each round gives a ratio, and the medians are reported.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


def emit(name: str, value: float, unit: str) -> None:
    """Print one result as a JSON line."""
    print(json.dumps({"name": name, "value": round(value, 4), "unit": unit}), flush=True)


def batch_rate(operation: Callable[[], object], batch: int) -> float:
    """Operations per second over one batch of ``batch`` calls."""
    start = time.perf_counter()
    for _ in range(batch):
        operation()
    return batch / (time.perf_counter() - start)


@dataclass(frozen=True)
class Comparison:
    subject: float
    baseline: float
    ratio: float


def compare(
    subject: Callable[[], object],
    baseline: Callable[[], object],
    *,
    rounds: int = 21,
    batch: int = 2_000,
) -> Comparison:
    """Median rates of ``subject`` and ``baseline`` and the median of their per-round ratios."""
    batch_rate(subject, batch // 4)  # warm caches and allocators
    batch_rate(baseline, batch // 4)
    subject_rates, baseline_rates, ratios = [], [], []
    for index in range(rounds):
        if index % 2:
            b = batch_rate(baseline, batch)
            s = batch_rate(subject, batch)
        else:
            s = batch_rate(subject, batch)
            b = batch_rate(baseline, batch)
        subject_rates.append(s)
        baseline_rates.append(b)
        ratios.append(s / b)
    return Comparison(
        statistics.median(subject_rates),
        statistics.median(baseline_rates),
        statistics.median(ratios),
    )
