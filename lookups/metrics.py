"""Lookup metrics of this process, in a form that adds up across processes.

Latencies go into fixed log-scale buckets, so histograms from several
processes merge exactly and p95 is read off the merged buckets (reported as
the bucket's upper bound).
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any

# Upper bounds in seconds; the last bucket is open-ended.
BUCKETS = (
    1e-6,
    2e-6,
    5e-6,
    1e-5,
    2e-5,
    5e-5,
    1e-4,
    2e-4,
    5e-4,
    1e-3,
    2e-3,
    5e-3,
    1e-2,
    2e-2,
    5e-2,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    float("inf"),
)
COUNTERS = (
    "lookups",
    "hits",
    "misses",
    "found",
    "not_found",
    "invalid",
    "fallbacks",
    "errors",
    "breaker_opens",
)
# The one source of the lookup alert thresholds: figure -> (raise when "<" or ">", limit).
ALERTS = {
    "hit_rate": ("<", 0.5),
    "db_avg_ms": (">", 100.0),
    "success_rate": ("<", 0.9),
    "fallback_rate": (">", 0.2),
}


def thresholds() -> dict[str, float]:
    """ALERTS for people: {"hit_rate_below": 0.5, "db_avg_ms_above": 100.0, ...}."""
    return {
        f"{key}_{'below' if op == '<' else 'above'}": limit for key, (op, limit) in ALERTS.items()
    }


class Histogram:
    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def as_dict(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "total": self.total}


class LookupMetrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.cache_latency = Histogram()
        self.db_latency = Histogram()

    def count(self, *names: str, path: str | None = None, seconds: float = 0.0) -> None:
        """Bump counters and, with ``path``, record a latency: one lock for all of it."""
        with self.lock:
            for name in names:
                self.counters[name] += 1
            if path is not None:
                (self.cache_latency if path == "cache" else self.db_latency).observe(seconds)

    def observe(self, path: str, seconds: float) -> None:
        with self.lock:
            (self.cache_latency if path == "cache" else self.db_latency).observe(seconds)

    def raw(self) -> dict[str, Any]:
        with self.lock:
            return {
                "counters": dict(self.counters),
                "cache_latency": self.cache_latency.as_dict(),
                "db_latency": self.db_latency.as_dict(),
            }


def merge(raws: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "counters": dict.fromkeys(COUNTERS, 0),
        "cache_latency": {"counts": [0] * len(BUCKETS), "total": 0.0},
        "db_latency": {"counts": [0] * len(BUCKETS), "total": 0.0},
    }
    for raw in raws:
        for name in COUNTERS:
            merged["counters"][name] += raw.get("counters", {}).get(name, 0)
        for key in ("cache_latency", "db_latency"):
            histogram = raw.get(key, {})
            for index, count in enumerate(histogram.get("counts", [])[: len(BUCKETS)]):
                merged[key]["counts"][index] += count
            merged[key]["total"] += histogram.get("total", 0.0)
    return merged


def _p95_ms(counts: list[int]) -> float | None:
    total = sum(counts)
    if not total:
        return None
    threshold = 0.95 * total
    running = 0
    for index, count in enumerate(counts):
        running += count
        if running >= threshold:
            bound = BUCKETS[index]
            return None if bound == float("inf") else round(bound * 1000, 4)
    return None


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """Rates, averages, p95s and alert flags from raw counters and histograms."""
    c = raw["counters"]
    lookups = c["lookups"]
    answered = c["hits"] + c["misses"]
    cache_n = sum(raw["cache_latency"]["counts"])
    db_n = sum(raw["db_latency"]["counts"])

    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    summary = {
        **c,
        "hit_rate": rate(c["hits"], answered),
        "success_rate": rate(c["hits"] + c["found"], lookups - c["invalid"]),
        "fallback_rate": rate(c["fallbacks"], lookups),
        "cache_avg_ms": round(raw["cache_latency"]["total"] / cache_n * 1000, 4)
        if cache_n
        else None,
        "cache_p95_ms": _p95_ms(raw["cache_latency"]["counts"]),
        "db_avg_ms": round(raw["db_latency"]["total"] / db_n * 1000, 4) if db_n else None,
        "db_p95_ms": _p95_ms(raw["db_latency"]["counts"]),
    }
    alerts = {}
    for key, (op, limit) in ALERTS.items():
        value = summary[key]
        alerts[key] = value is not None and (value < limit if op == "<" else value > limit)
    summary["alerts"] = alerts
    return summary
