"""GET /metrics: Prometheus metrics, aggregated across every web and worker process.

Counters and histograms are defined in ``controlplane.lib.metrics`` and written by
each process to PROMETHEUS_MULTIPROC_DIR; this scrape sums them. Gauges that
describe shared state (breaker states, jobs by status, queue depth) and the lookup
figures (already aggregated per process in the database) are read from PostgreSQL
at scrape time instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from controlplane.breakers.models import Breaker
from controlplane.breakers.snapshot import CLOSED, FORCED_OPEN, HALF_OPEN, OPEN, effective_state
from jobs.models import Job, JobStatus
from lookups.metrics import BUCKETS, merge
from lookups.models import ProcessStats

BREAKER_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2, FORCED_OPEN: 3}


class DatabaseCollector(Collector):
    """Shared state, read once per scrape (small tables and indexed counts only)."""

    def collect(self) -> Iterator[Any]:
        try:
            yield from self._breakers()
            yield from self._jobs()
            yield from self._lookups()
        except DatabaseError:
            connection.close()
            up = GaugeMetricFamily("controlplane_database_up", "Database reachable at scrape.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("controlplane_database_up", "Database reachable at scrape.")
        up.add_metric([], 1)
        yield up

    def _breakers(self) -> Iterator[Any]:
        state = GaugeMetricFamily(
            "controlplane_breaker_state",
            "Breaker state: 0 closed, 1 half-open, 2 open, 3 forced open.",
            labels=["breaker"],
        )
        rows = Breaker.objects.values_list("name", "state", "override")[:1000]
        for name, current, override in rows:
            state.add_metric([name], BREAKER_STATE_VALUE[effective_state(current, override)])
        yield state

    def _jobs(self) -> Iterator[Any]:
        by_status = GaugeMetricFamily(
            "controlplane_jobs", "Jobs created in the last 24 h, by status.", labels=["status"]
        )
        counts = Job.objects.status_counts(since=timezone.now() - timedelta(hours=24))
        for status, count in counts.items():  # every status, zeros included: steady series
            by_status.add_metric([status], count)
        yield by_status
        depth = GaugeMetricFamily("controlplane_job_queue_depth", "Jobs waiting to run.")
        depth.add_metric([], Job.objects.filter(status=JobStatus.QUEUED).count())
        yield depth

    def _lookups(self) -> Iterator[Any]:
        rows = ProcessStats.objects.filter(updated_at__gte=timezone.now() - timedelta(minutes=5))
        merged = merge([row.data for row in rows])
        counters = merged["counters"]
        cache = CounterMetricFamily(
            "controlplane_lookup_cache", "Lookup cache hits and misses.", labels=["result"]
        )
        cache.add_metric(["hit"], counters["hits"])
        cache.add_metric(["miss"], counters["misses"])
        yield cache
        outcomes = CounterMetricFamily(
            "controlplane_lookups", "Lookups by outcome.", labels=["outcome"]
        )
        for outcome in ("found", "not_found", "invalid", "fallbacks", "errors"):
            outcomes.add_metric([outcome], counters[outcome])
        yield outcomes
        latency = HistogramMetricFamily(
            "controlplane_lookup_latency_seconds", "Lookup latency by path.", labels=["path"]
        )
        for path, key in (("cache", "cache_latency"), ("db", "db_latency")):
            running, buckets = 0, []
            for bound, count in zip(BUCKETS, merged[key]["counts"], strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            latency.add_metric([path], buckets, merged[key]["total"])
        yield latency


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        return request.headers.get("Authorization", "") == f"Bearer {token}"
    try:
        client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(net) for net in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse(
            "metrics are not available to this client\n", status=403, content_type="text/plain"
        )
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type="text/plain; version=0.0.4")
