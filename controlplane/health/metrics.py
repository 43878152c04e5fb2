"""Prometheus metrics, aggregated across every web and worker process.

prometheus-client runs in multi-process mode (PROMETHEUS_MULTIPROC_DIR, set in
settings): each process writes its counters and histograms to files there and
/metrics sums them. Gauges that describe shared state (breaker states, jobs by
status, queue depth) and the lookup figures (already aggregated per process in
the database) are read from PostgreSQL at scrape time instead.
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
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "controlplane_http_requests", "HTTP responses by status code.", ["method", "status"]
)
ERROR_RECORDS = Counter("controlplane_error_records", "Error records written, by code.", ["code"])
BREAKER_TRANSITIONS = Counter(
    "controlplane_breaker_transitions",
    "Breaker transitions (counted by the winner).",
    ["breaker", "to_state"],
)
BREAKER_REJECTIONS = Counter(
    "controlplane_breaker_rejections", "Calls refused by an open breaker.", ["breaker"]
)
RETRY_ATTEMPTS = Counter(
    "controlplane_retry_attempts", "Retries of outgoing calls, by failure type.", ["reason"]
)
JOBS_FINISHED = Counter(
    "controlplane_job_outcomes", "Job attempts ended, by kind and outcome.", ["kind", "outcome"]
)
JOB_DURATION = Histogram(
    "controlplane_job_duration_seconds",
    "Wall time of job attempts.",
    ["kind", "outcome"],
    buckets=(0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800),
)

BREAKER_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2, "forced_open": 3}


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
        from controlplane.breakers.models import Breaker

        state = GaugeMetricFamily(
            "controlplane_breaker_state",
            "Breaker state: 0 closed, 1 half-open, 2 open, 3 forced open.",
            labels=["breaker"],
        )
        for name, current, override in Breaker.objects.values_list("name", "state", "override")[
            :1000
        ]:
            key = "forced_open" if override == "forced_open" else current
            state.add_metric([name], BREAKER_STATE_VALUE[key])
        yield state

    def _jobs(self) -> Iterator[Any]:
        from jobs.models import Job

        since = timezone.now() - timedelta(hours=24)
        by_status = GaugeMetricFamily(
            "controlplane_jobs", "Jobs created in the last 24 h, by status.", labels=["status"]
        )
        from jobs.models import JobStatus

        counts = _status_counts(since)
        for status in JobStatus.values:  # every status, zeros included, for steady series
            by_status.add_metric([status], counts.get(status, 0))
        yield by_status
        depth = GaugeMetricFamily("controlplane_job_queue_depth", "Jobs waiting to run.")
        depth.add_metric([], Job.objects.filter(status="queued").count())
        yield depth

    def _lookups(self) -> Iterator[Any]:
        from lookups.metrics import BUCKETS, merge
        from lookups.models import ProcessStats

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


def _status_counts(since: Any) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, count(*) FROM jobs_job WHERE created_at >= %s GROUP BY status", [since]
        )
        return dict(cursor.fetchall())


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


class MetricsMiddleware:
    """Counts every response by method and status."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        HTTP_REQUESTS.labels(request.method, str(response.status_code)).inc()
        return response
