"""Prometheus metric definitions, and the middleware that counts HTTP responses.

Every layer imports its counters from here; the scrape that reads them (and the
database-backed gauges) is ``controlplane.health.scrape``. prometheus-client runs
in multi-process mode (PROMETHEUS_MULTIPROC_DIR, set in settings): each process
writes its counters and histograms to files there, and the scrape sums them.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Histogram

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
    "controlplane_job_outcomes", "Job attempts ended, by kind and outcome.", ["kind", "outcome"]
)
JOB_DURATION = Histogram(
    "controlplane_job_duration_seconds",
    "Wall time of job attempts.",
    ["kind", "outcome"],
    buckets=(0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 600, 1800),
)


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
