"""The gauges of GET /metrics that describe shared state: read from PostgreSQL (and the
error spool's files), not counted by processes.

Every instance reports the same database-backed values, so alert rules and dashboards
take their ``max``, never their ``sum``. Each series is bounded by something this service
controls (DESIGN invariant 10): its own breakers (at most METRICS_MAX_BREAKERS), its
configured providers, fixed status sets; clients' breakers are only counted by state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, DurationField, ExpressionWrapper, Min
from django.db.models.functions import Now
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from controlplane.breakers.models import Breaker
from controlplane.breakers.snapshot import CLOSED, FORCED_OPEN, HALF_OPEN, OPEN, effective_state
from controlplane.errors import spool
from controlplane.health.checks import worker_clusters
from controlplane.health.models import ProviderCheck
from controlplane.health.probes import latest
from jobs.models import Job, JobStatus

BREAKER_STATE_VALUE = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2, FORCED_OPEN: 3}
NOT_CHECKED = -1
PROVIDER_HEALTH_VALUE = {
    ProviderCheck.HEALTHY: 0,
    ProviderCheck.DEGRADED: 1,
    ProviderCheck.UNHEALTHY: 2,
}


class DatabaseCollector(Collector):
    """Shared state from the database (small tables and indexed counts only), read at most
    once per METRICS_CACHE_SECONDS in this process, so most scrapes run no query."""

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
        up = GaugeMetricFamily(
            "controlplane_database_up", "1 when the database answered at the last read, else 0."
        )
        try:
            families = [*self._breakers(), *self._providers(), *self._jobs(), self._workers()]
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
        rows = Breaker.objects.filter(owner=None).order_by("name")
        values = rows.values_list("name", "state", "override")
        for name, current, override in values[: settings.METRICS_MAX_BREAKERS]:
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

    def _providers(self) -> Iterator[Any]:
        health = GaugeMetricFamily(
            "controlplane_provider_health",
            "Each configured provider's newest health check: 0 healthy, 1 degraded (slow), "
            "2 unhealthy, -1 not checked yet.",
            labels=["provider"],
        )
        checks = latest()
        for name in settings.PROVIDERS:
            check = checks.get(name)
            health.add_metric([name], PROVIDER_HEALTH_VALUE[check.status] if check else NOT_CHECKED)
        yield health

    def _jobs(self) -> Iterator[Any]:
        by_status = GaugeMetricFamily(
            "controlplane_jobs", "Jobs created in the last 24 h, by status.", labels=["status"]
        )
        counts = Job.objects.status_counts(since=timezone.now() - timedelta(hours=24))
        for status, count in counts.items():  # every status, zeros included: steady series
            by_status.add_metric([status], count)
        yield by_status
        queued = Job.objects.filter(status=JobStatus.QUEUED)
        depth = GaugeMetricFamily("controlplane_job_queue_depth", "Jobs waiting to run.")
        depth.add_metric([], queued.count())
        yield depth
        # Due jobs only (a job held back by its backoff or a breaker is not late), aged by the
        # database's clock; the partial index on queued jobs' run_after answers it.
        oldest = queued.filter(run_after__lte=Now()).aggregate(
            age=ExpressionWrapper(Now() - Min("run_after"), output_field=DurationField())
        )["age"]
        age = GaugeMetricFamily(
            "controlplane_job_oldest_queued_age_seconds",
            "How long the job waiting longest has been due without starting (0: none waits).",
        )
        age.add_metric([], oldest.total_seconds() if oldest else 0)
        yield age

    def _workers(self) -> Any:
        workers = GaugeMetricFamily(
            "controlplane_worker_clusters", "django-q2 worker clusters reporting alive."
        )
        workers.add_metric([], worker_clusters())
        return workers


class SpoolCollector(Collector):
    """This machine's error spool, from file sizes alone (no database: it matters most
    while the database is away)."""

    def collect(self) -> Iterator[Any]:
        backlog = spool.backlog()
        waiting = GaugeMetricFamily(
            "controlplane_error_spool_backlog_bytes",
            "Bytes of spooled error records not replayed into the database yet.",
        )
        waiting.add_metric([], backlog.bytes)
        files = GaugeMetricFamily(
            "controlplane_error_spool_backlog_files",
            "Spool files still holding error records not replayed yet.",
        )
        files.add_metric([], backlog.files)
        disk = GaugeMetricFamily(
            "controlplane_error_spool_disk_bytes",
            "Bytes the spool's files take on disk (what ERROR_SPOOL_MAX_BYTES caps).",
        )
        disk.add_metric([], backlog.disk_bytes)
        cap = GaugeMetricFamily(
            "controlplane_error_spool_limit_bytes",
            "ERROR_SPOOL_MAX_BYTES: past it, error records are only logged.",
        )
        cap.add_metric([], settings.ERROR_SPOOL_MAX_BYTES)
        return iter([waiting, files, disk, cap])
