"""Prometheus metric definitions, and the middleware that counts HTTP responses.

Every layer imports its counters from here; the scrape that reads them (and the
database-backed gauges) is ``controlplane.health.scrape``. prometheus-client runs
in multi-process mode (PROMETHEUS_MULTIPROC_DIR, set in settings): each process
writes its counters and histograms to files there, and the scrape sums them. The
files outlive their process, so a sum never drops when a process exits: Prometheus
can ``rate()`` every counter here over any window.

Labels hold only values this service chooses (DESIGN invariant 10): codes it knows,
its own breakers and upstreams, registered job kinds, a fixed set of outcomes.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

# Lookup latency bounds in seconds (log scale, from a cache hit's microsecond to a slow
# query); the lookups app counts into the same buckets in memory, so they add exactly.
LOOKUP_LATENCY_BUCKETS = (
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

HTTP_REQUESTS = Counter(
    "controlplane_http_requests", "HTTP responses by status code.", ["method", "status"]
)
ERROR_RECORDS = Counter(
    "controlplane_error_records",
    "Error records written, by code (reported codes this service does not know: 'reported').",
    ["code"],
)
ERROR_RECORDS_NOT_SPOOLED = Counter(
    "controlplane_error_records_not_spooled",
    "Error records only logged: the database was down and the spool full or unwritable.",
)
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
RETRY_BUDGET_REFUSALS = Counter(
    "controlplane_retry_budget_refusals",
    "Retries of outgoing calls refused by the shared retry budget, by upstream.",
    ["upstream"],
)
JOBS_FINISHED = Counter(
    "controlplane_job_outcomes",
    "Job attempts ended, by kind and outcome (succeeded, failed, retrying, cancelled, "
    "timed_out, interrupted, lost_claim, crashed).",
    ["kind", "outcome"],
)
JOB_DURATION = Histogram(
    "controlplane_job_duration_seconds",
    "Wall time of job attempts.",
    ["kind", "outcome"],
    buckets=(0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800),
)
# Lookups count in memory on their hot path (lookups.metrics); each stats flush adds what
# was counted since the last one to these (lookups.prometheus_export).
LOOKUPS = Counter("controlplane_lookups", "Slug lookups: single ones and each item of a batch.")
LOOKUP_CACHE = Counter(
    "controlplane_lookup_cache",
    "Lookups answered from the process's cache (hit) or not (miss).",
    ["result"],
)
LOOKUP_OUTCOMES = Counter(
    "controlplane_lookup_outcomes",
    "Lookups that missed the cache, by how they ended (found, not_found, invalid, fallback: "
    "the slug-only answer, stale: a kept entry served while the database was away).",
    ["outcome"],
)
LOOKUP_DATABASE_ERRORS = Counter(
    "controlplane_lookup_database_errors", "Lookup queries that failed with a database error."
)
LOOKUP_LATENCY = Histogram(
    "controlplane_lookup_latency_seconds",
    "Lookup latency: answered from the cache, or by the database.",
    ["path"],
    buckets=LOOKUP_LATENCY_BUCKETS,
)


def add_to_histogram(child: Any, counts: list[int], total: float) -> None:
    """Add ``counts`` (one per bucket of ``child``'s histogram, not cumulative) and their
    ``total`` of observed values to one labelled histogram. prometheus-client can only add
    one observation at a time; its per-bucket values are what ``observe`` itself bumps."""
    for value, count in zip(child._buckets, counts, strict=True):
        if count:
            value.inc(count)
    if total:
        child._sum.inc(total)


# A client chooses the method token; only these get their own series.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Counts every response by method (others as "other") and status."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        method = request.method if request.method in HTTP_METHODS else "other"
        HTTP_REQUESTS.labels(method, str(response.status_code)).inc()
        return response
