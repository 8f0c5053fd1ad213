"""Benchmarks: each module prints JSON lines ``{"name", "value", "unit"}``."""
