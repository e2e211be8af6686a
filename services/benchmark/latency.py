"""Latency statistics of one measured window: nearest-rank percentiles and the summary row."""

from __future__ import annotations

import math


def percentile(sorted_values: list[float], percent: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(latencies_s: list[float], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies_s)
    ms = 1000.0
    return {
        "calls": len(ordered),
        "per_second": len(ordered) / seconds if seconds > 0 else 0.0,
        "mean_ms": sum(ordered) / len(ordered) * ms if ordered else 0.0,
        "p50_ms": percentile(ordered, 50) * ms,
        "p90_ms": percentile(ordered, 90) * ms,
        "p99_ms": percentile(ordered, 99) * ms,
        "max_ms": (ordered[-1] if ordered else 0.0) * ms,
    }
