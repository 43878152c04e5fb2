"""GET /metrics: Prometheus metrics, aggregated across every web and worker process.

Counters and histograms are defined in ``controlplane.lib.metrics`` and written by
each process to PROMETHEUS_MULTIPROC_DIR; this scrape sums them. Gauges that
describe shared state (breaker states, jobs by status, queue depth) and the lookup
figures (already aggregated per process in the database) are read from PostgreSQL,
at most once per METRICS_CACHE_SECONDS per process, so scrapes cost no queries.

Access: with METRICS_TOKEN, a bearer token (compared in constant time); without
it, the client's address must be in METRICS_ALLOWED_NETWORKS, where the address
is the last X-Forwarded-For hop that is not one of METRICS_TRUSTED_PROXIES.
"""

from __future__ import annotations

import hmac
import ipaddress
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count
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
    """Shared state from the database (small tables and indexed counts only), read at most
    once per METRICS_CACHE_SECONDS in this process."""

    def __init__(self) -> None:
        self.families: list[Any] = []
        self.read_at = float("-inf")
        self.lock = threading.Lock()

    def collect(self) -> Iterator[Any]:
        with self.lock:
            if time.monotonic() - self.read_at >= settings.METRICS_CACHE_SECONDS:
                self.families = self._read()
                self.read_at = time.monotonic()
            return iter(self.families)

    def _read(self) -> list[Any]:
        up = GaugeMetricFamily("controlplane_database_up", "Database reachable at scrape.")
        try:
            families = [*self._breakers(), *self._jobs(), *self._lookups()]
        except DatabaseError:
            connection.close()
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [*families, up]

    def _breakers(self) -> Iterator[Any]:
        state = GaugeMetricFamily(
            "controlplane_breaker_state",
            "State of this service's breakers: 0 closed, 1 half-open, 2 open, 3 forced open.",
            labels=["breaker"],
        )
        rows = Breaker.objects.filter(owner=None).values_list("name", "state", "override")
        for name, current, override in rows[: settings.METRICS_MAX_BREAKERS]:
            state.add_metric([name], BREAKER_STATE_VALUE[effective_state(current, override)])
        yield state
        # Clients create breakers at will: counted by state, never one series per name.
        clients = GaugeMetricFamily(
            "controlplane_client_breakers", "Clients' breakers, by state.", labels=["state"]
        )
        counts: dict[str, int] = dict.fromkeys(BREAKER_STATE_VALUE, 0)
        grouped = (
            Breaker.objects.exclude(owner=None)
            .order_by()
            .values_list("state", "override")
            .annotate(Count("id"))
        )
        for current, override, count in grouped:  # a few rows, however many breakers exist
            counts[effective_state(current, override)] += count
        for key, count in counts.items():
            clients.add_metric([key], count)
        yield clients

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


def _in(address: str, networks: list[str]) -> bool:
    try:
        client = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(client in ipaddress.ip_network(net) for net in networks)


def client_address(request: HttpRequest) -> str:
    """The scraper's address: REMOTE_ADDR, or behind trusted proxies the last hop of
    X-Forwarded-For that is not one of them (earlier hops are whatever the client wrote)."""
    address = request.META.get("REMOTE_ADDR", "")
    trusted = settings.METRICS_TRUSTED_PROXIES
    if not trusted or not _in(address, trusted):
        return address
    for hop in reversed(request.headers.get("X-Forwarded-For", "").split(",")):
        if not _in(hop, trusted):
            return hop.strip()
    return address


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    return _in(client_address(request), settings.METRICS_ALLOWED_NETWORKS)


_registry = CollectorRegistry()
MultiProcessCollector(_registry)
_registry.register(DatabaseCollector())


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse(
            "metrics are not available to this client\n", status=403, content_type="text/plain"
        )
    return HttpResponse(generate_latest(_registry), content_type="text/plain; version=0.0.4")
