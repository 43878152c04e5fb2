"""Error bursts in a group and job failure bursts fire once per episode, evaluated on the
database clock, and end once under the threshold again."""

from __future__ import annotations

from typing import Any

from django.db import connection

from controlplane.errors.exceptions import ServiceUnavailableError
from controlplane.errors.recording import record_error
from controlplane.health.conditions import error_bursts, job_failure_bursts
from controlplane.health.models import AlertEvent
from jobs.models import Job


def firing(kind: str) -> list[str]:
    return list(AlertEvent.objects.firing().filter(kind=kind).values_list("summary", flat=True))


def test_an_error_burst_fires_once_and_ends(db: Any, settings: Any) -> None:
    settings.ALERT_ERROR_BURST_COUNT = 3
    for _ in range(2):
        record_error(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service="billing")
    assert error_bursts() == set() and firing("error.burst") == []

    record_error(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service="billing")
    error_bursts()
    error_bursts()  # a second sweep (or another worker) in the same episode: nothing new
    assert firing("error.burst") == ["3 DEMO_TRANSIENT_FAILURE errors in 300 s in billing"]

    with connection.cursor() as cursor:  # the records age out of the window
        cursor.execute("UPDATE errors_errorrecord SET created_at = now() - interval '1 hour'")
    error_bursts()
    assert firing("error.burst") == []
    assert AlertEvent.objects.get(kind="error.burst").status == "resolved"


def test_a_job_failure_burst_fires_once_per_kind(db: Any, settings: Any) -> None:
    settings.ALERT_JOB_FAILURE_BURST_COUNT = 2
    for status in ("failed", "timed_out", "succeeded"):
        Job.objects.create(kind="demo.sleep", payload={}, status=status, finished_at=None)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_job SET finished_at = now()")
    assert job_failure_bursts() == {"demo.sleep"}
    assert job_failure_bursts() == {"demo.sleep"}
    assert firing("job.failure_burst") == ["2 demo.sleep jobs failed or timed out in 300 s"]
    assert AlertEvent.objects.filter(kind="job.failure_burst").count() == 1


def test_failed_alert_delivery_jobs_make_no_burst(db: Any, settings: Any) -> None:
    settings.ALERT_JOB_FAILURE_BURST_COUNT = 1
    Job.objects.create(kind="notifications.deliver", payload={}, status="failed")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE jobs_job SET finished_at = now()")
    assert job_failure_bursts() == set()
