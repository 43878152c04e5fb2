"""Lookup metrics of this process, in a form that adds up across processes.

Latencies go into fixed log-scale buckets, so histograms from several
processes merge exactly and p95 is read off the merged buckets (reported as
the bucket's upper bound).

Every count lands in a bucket for its wall-clock minute; the last hour of
buckets is flushed with the process stats, so alert flags are computed over
recent windows (the last 5 minutes and the last hour, summed over every
process), where a fresh drop in hit rate shows at once instead of disappearing
in a lifetime average. The lifetime totals are the buckets plus what has left
the hour; ``lookups.prometheus_export`` adds them to the Prometheus counters.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from controlplane.lib.metrics import LOOKUP_LATENCY_BUCKETS

# Upper bounds in seconds; the last bucket is open-ended. The same as the exported
# histogram's, so the figures the stats page shows and what Prometheus gets agree.
BUCKETS = LOOKUP_LATENCY_BUCKETS
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
    "stale",
)
# The one source of the lookup alert thresholds: figure -> (raise when "<" or ">", limit).
# Each is checked over every window of WINDOWS; breaker_opens is a count in the window
# (more than 5 in an hour; 6 in five minutes are more than 5 in the hour as well).
ALERTS = {
    "hit_rate": ("<", 0.5),
    "cache_avg_ms": (">", 5.0),
    "db_avg_ms": (">", 100.0),
    "success_rate": ("<", 0.9),
    "fallback_rate": (">", 0.2),
    "breaker_opens": (">", 5),
}
# Window name -> minutes: the current minute and the ones before it.
WINDOWS = {"5m": 5, "1h": 60}
KEPT_MINUTES = max(WINDOWS.values())


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


class _Tally:
    """Counters and the two latency histograms: the whole life, or one minute."""

    def __init__(self) -> None:
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.cache_latency = Histogram()
        self.db_latency = Histogram()

    def add(self, names: Iterable[str], path: str | None, seconds: float) -> None:
        for name in names:
            self.counters[name] += 1
        if path is not None:
            (self.cache_latency if path == "cache" else self.db_latency).observe(seconds)

    def absorb(self, other: _Tally) -> None:
        for name, count in other.counters.items():
            self.counters[name] += count
        for mine, theirs in (
            (self.cache_latency, other.cache_latency),
            (self.db_latency, other.db_latency),
        ):
            mine.counts = [a + b for a, b in zip(mine.counts, theirs.counts, strict=True)]
            mine.total += theirs.total

    def raw(self) -> dict[str, Any]:
        return {
            "counters": dict(self.counters),
            "cache_latency": self.cache_latency.as_dict(),
            "db_latency": self.db_latency.as_dict(),
        }

    def compact(self) -> dict[str, Any]:
        """``raw()`` without zeros (an hour of minutes is written every flush); ``merge``
        reads missing counters and histogram tails as zeros."""

        def trimmed(histogram: Histogram) -> dict[str, Any]:
            counts = list(histogram.counts)
            while counts and not counts[-1]:
                counts.pop()
            return {"counts": counts, "total": histogram.total}

        return {
            "counters": {name: n for name, n in self.counters.items() if n},
            "cache_latency": trimmed(self.cache_latency),
            "db_latency": trimmed(self.db_latency),
        }


class LookupMetrics:
    """Per-minute buckets of the last hour (``minutes()``) and lifetime totals (``raw()``).

    A count touches only its minute's bucket (the hot path pays for one tally, not two);
    a minute older than the hour is folded into ``earlier``, and the lifetime totals are
    ``earlier`` plus the buckets, summed when read. ``clock`` is the wall clock (minutes must
    line up across processes); tests inject one.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.earlier = _Tally()
        self.by_minute: dict[int, _Tally] = {}

    def minute(self) -> int:
        return int(self.clock() // 60)

    def count(self, *names: str, path: str | None = None, seconds: float = 0.0) -> None:
        """Bump counters and, with ``path``, record a latency: one lock for all of it."""
        minute = int(self.clock() // 60)
        with self.lock:
            tally = self.by_minute.get(minute)
            if tally is None:
                tally = self.by_minute[minute] = _Tally()
                for old in [m for m in self.by_minute if m <= minute - KEPT_MINUTES]:
                    self.earlier.absorb(self.by_minute.pop(old))
            tally.add(names, path, seconds)

    def observe(self, path: str, seconds: float) -> None:
        self.count(path=path, seconds=seconds)

    def raw(self) -> dict[str, Any]:
        """Lifetime totals."""
        total = _Tally()
        with self.lock:
            total.absorb(self.earlier)
            for tally in self.by_minute.values():
                total.absorb(tally)
        return total.raw()

    def minutes(self) -> dict[str, dict[str, Any]]:
        """The buckets of the last hour, keyed by minute (a string: JSON keys are)."""
        now = self.minute()
        with self.lock:
            return {
                str(minute): tally.compact()
                for minute, tally in self.by_minute.items()
                if minute > now - KEPT_MINUTES
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


def figures(raw: dict[str, Any]) -> dict[str, Any]:
    """Counts, rates, averages and p95s from raw counters and histograms."""
    c = {**dict.fromkeys(COUNTERS, 0), **raw["counters"]}
    lookups = c["lookups"]
    answered = c["hits"] + c["misses"]
    cache_n = sum(raw["cache_latency"]["counts"])
    db_n = sum(raw["db_latency"]["counts"])

    def rate(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {
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


def flags(summary: dict[str, Any]) -> dict[str, bool]:
    """Which ALERTS ``summary`` crosses (a figure with no data raises nothing)."""
    alerts = {}
    for key, (op, limit) in ALERTS.items():
        value = summary[key]
        alerts[key] = value is not None and (value < limit if op == "<" else value > limit)
    return alerts


def summarise(raw: dict[str, Any]) -> dict[str, Any]:
    """``figures`` with their alert flags."""
    summary = figures(raw)
    summary["alerts"] = flags(summary)
    return summary


def windows(minutes: Iterable[dict[str, dict[str, Any]]], now_minute: int) -> dict[str, Any]:
    """Each window of WINDOWS summarised over the minute buckets of every process given."""
    buckets = [(int(m), raw) for each in minutes for m, raw in each.items()]
    return {
        name: summarise(merge([raw for m, raw in buckets if now_minute - length < m <= now_minute]))
        for name, length in WINDOWS.items()
    }


def report(
    raw: dict[str, Any], minutes: Iterable[dict[str, dict[str, Any]]], now_minute: int
) -> dict[str, Any]:
    """Lifetime figures, each window's figures and flags, and ``alerts``: a flag is raised
    when any window raises it (never from lifetime totals, which hide a fresh drop)."""
    recent = windows(minutes, now_minute)
    return {
        **figures(raw),
        "windows": recent,
        "alerts": {key: any(w["alerts"][key] for w in recent.values()) for key in ALERTS},
    }
