"""Error bursts in a group and job failure bursts fire once per episode, evaluated on the
database clock, and end once under the threshold again -- and only then: a burst past the
first BURSTS_ANNOUNCED of a sweep does not flap.

Error records and jobs of other tests may be committed: each test counts its own service's
records and its own job kind."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from controlplane.errors.exceptions import ServiceUnavailableError
from controlplane.errors.recording import record_error
from controlplane.health import bursts
from controlplane.health.conditions import error_bursts, job_failure_bursts
from controlplane.health.models import AlertEvent
from jobs.models import Job


def firing(kind: str, subject: str) -> list[str]:
    events = AlertEvent.objects.firing().filter(kind=kind, subject=subject)
    return list(events.values_list("summary", flat=True))


def errors(service: str, count: int) -> str:
    """``count`` records of one group in ``service``; its fingerprint."""
    for _ in range(count):
        recorded = record_error(
            ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service=service
        )
    return recorded.row["fingerprint"]


def test_an_error_burst_fires_once_and_ends(db: Any, settings: Any) -> None:
    settings.ALERT_ERROR_BURST_COUNT = 3
    service = f"billing-{uuid.uuid4().hex[:8]}"
    group = errors(service, 2)
    assert group not in error_bursts() and firing("error.burst", group) == []

    errors(service, 1)
    error_bursts()
    error_bursts()  # a second sweep (or another worker) in the same episode: nothing new
    assert firing("error.burst", group) == [
        f"3 DEMO_TRANSIENT_FAILURE errors in 300 s in {service}"
    ]

    with connection.cursor() as cursor:  # the records age out of the window
        cursor.execute(
            "UPDATE errors_errorrecord SET created_at = now() - interval '1 hour' "
            "WHERE fingerprint = %s",
            [group],
        )
    error_bursts()
    assert firing("error.burst", group) == []
    assert AlertEvent.objects.get(kind="error.burst", subject=group).status == "resolved"


def test_a_burst_past_the_announced_ones_keeps_firing(
    db: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ALERT_ERROR_BURST_COUNT = 2
    monkeypatch.setattr(bursts, "BURSTS_ANNOUNCED", 1)
    smaller = errors(f"small-{uuid.uuid4().hex[:8]}", 2)
    error_bursts()  # alone: announced
    bigger = errors(f"big-{uuid.uuid4().hex[:8]}", 3)

    assert smaller not in error_bursts()  # past the cap of this sweep...
    assert firing("error.burst", smaller) != []  # ...but still over the threshold: fires on
    assert firing("error.burst", bigger) != []


def test_a_job_failure_burst_fires_once_per_kind(db: Any, settings: Any) -> None:
    settings.ALERT_JOB_FAILURE_BURST_COUNT = 2
    kind = f"demo.burst-{uuid.uuid4().hex[:8]}"
    jobs = [
        Job.objects.create(kind=kind, payload={}, status=status, finished_at=None).pk
        for status in ("failed", "timed_out", "succeeded")
    ]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_job SET finished_at = now() WHERE id = ANY(%s)", [jobs])
    assert kind in job_failure_bursts()
    assert kind in job_failure_bursts()
    assert firing("job.failure_burst", kind) == [f"2 {kind} jobs failed or timed out in 300 s"]
    assert AlertEvent.objects.filter(kind="job.failure_burst", subject=kind).count() == 1


def test_failed_alert_delivery_jobs_make_no_burst(db: Any, settings: Any) -> None:
    settings.ALERT_JOB_FAILURE_BURST_COUNT = 1
    job = Job.objects.create(kind="notifications.deliver", payload={}, status="failed")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_job SET finished_at = now() WHERE id = %s", [job.pk])
    assert "notifications.deliver" not in job_failure_bursts()
