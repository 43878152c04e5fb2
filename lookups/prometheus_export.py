"""This process's lookup figures as Prometheus counters that never drop.

The hot path counts in memory only (``LookupMetrics.count``: a cache hit must stay near a
microsecond, and one prometheus-client increment in multi-process mode costs about as much
as the whole hit). Each stats flush adds what was counted since the previous flush to the
multi-process counters of ``controlplane.lib.metrics``, and a clean exit adds the rest.
Their files outlive the process, so the sums a scrape reports only grow as processes come
and go (summing the recent ``ProcessStats`` rows, as the stats page does, drops a process
five minutes after it exits: a false counter reset for ``rate()``).

A process killed with SIGKILL loses what it counted since its last flush
(LOOKUP_STATS_FLUSH_SECONDS); the sums still never go down.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from controlplane.lib.metrics import (
    LOOKUP_CACHE,
    LOOKUP_DATABASE_ERRORS,
    LOOKUP_LATENCY,
    LOOKUP_OUTCOMES,
    LOOKUPS,
    add_to_histogram,
)
from controlplane.lib.processes import at_exit
from lookups.metrics import LookupMetrics

# Exported label -> the in-memory counter it adds up.
CACHE_RESULTS = {"hit": "hits", "miss": "misses"}
OUTCOMES = {
    "found": "found",
    "not_found": "not_found",
    "invalid": "invalid",
    "fallback": "fallbacks",
    "stale": "stale",
}
LATENCY_PATHS = {"cache": "cache_latency", "db": "db_latency"}


# Every series from the start, at zero: a series that first appears at 1 hides that first
# count from rate(), and a hit rate needs both of its series.
for _label in CACHE_RESULTS:
    LOOKUP_CACHE.labels(_label)
for _label in OUTCOMES:
    LOOKUP_OUTCOMES.labels(_label)
for _label in LATENCY_PATHS:
    LOOKUP_LATENCY.labels(_label)

# The export of this process's current ``Lookups`` (tests replace it), pushed at exit by one
# hook per process.
_exiting: dict[str, Any] = {"pid": None, "export": None}


def _zero() -> dict[str, Any]:
    return LookupMetrics().raw()


def _push_latest() -> None:
    export = _exiting["export"]
    if export is not None and export.pid == os.getpid():
        export.push()


class PrometheusExport:
    """Adds ``metrics``' growth since the last ``push`` to the Prometheus counters."""

    def __init__(self, metrics: LookupMetrics) -> None:
        self.metrics = metrics
        self.lock = threading.Lock()
        self.sent = _zero()
        self.pid = os.getpid()
        self._push_at_exit()

    def push(self) -> None:
        with self.lock:
            now = self.metrics.raw()
            if self.pid != os.getpid():
                # A forked child: what it inherited is its parent's to push.
                self.sent = now
                self.pid = os.getpid()
                self._push_at_exit()
            sent, self.sent = self.sent, now
        _add(now, sent)

    def _push_at_exit(self) -> None:
        """This export is the one to push when this process exits (one hook per process:
        a forked child runs none of its parent's)."""
        _exiting["export"] = self
        if _exiting["pid"] != self.pid:
            _exiting["pid"] = self.pid
            at_exit(_push_latest)


def _grown(now: int | float, sent: int | float) -> int | float:
    # Less than was sent only after ``LookupMetrics.reset`` (tests): nothing to add.
    return max(now - sent, 0)


def _add(now: dict[str, Any], sent: dict[str, Any]) -> None:
    counters, before = now["counters"], sent["counters"]
    if grown := _grown(counters["lookups"], before["lookups"]):
        LOOKUPS.inc(grown)
    if grown := _grown(counters["errors"], before["errors"]):
        LOOKUP_DATABASE_ERRORS.inc(grown)
    for family, labels in ((LOOKUP_CACHE, CACHE_RESULTS), (LOOKUP_OUTCOMES, OUTCOMES)):
        for label, name in labels.items():
            if grown := _grown(counters[name], before[name]):
                family.labels(label).inc(grown)
    for path, key in LATENCY_PATHS.items():
        counts = [
            _grown(a, b) for a, b in zip(now[key]["counts"], sent[key]["counts"], strict=True)
        ]
        if any(counts):
            total = _grown(now[key]["total"], sent[key]["total"])
            add_to_histogram(LOOKUP_LATENCY.labels(path), counts, total)
