"""A job without a deadline (created before deadlines existed: both deadline columns NULL)
runs, retries, waits and is polled as a job with no deadline, never as one whose deadline
has just passed."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_q.signing import SignedPackage

from jobs.actions import create_job, retry_job
from jobs.maintenance import run_maintenance
from jobs.models import Job
from jobs.tasks import run_job
from tests.breakers.conftest import fresh_name  # noqa: F401
from tests.jobs.test_breaker_waits import force_open, http_job, reset, upstream  # noqa: F401
from tests.jobs.test_deadlines import shift_back
from tests.resilience.flaky_server import Script


def as_before_deadlines(job: Job) -> None:
    """The row as migration 0005 left a job created before it: no deadline at all."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET deadline_seconds = NULL, deadline_at = NULL WHERE id = %s",
            [job.id],
        )


def lose_hand_off() -> None:
    """Every job is due for (re)dispatch by maintenance: the queue lost what it held."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_q_ormq; UPDATE jobs_job SET dispatched_at = NULL")


def queued_timeouts() -> dict[str, int]:
    """django-q2's hard time limit of each task in its queue, by job id."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM django_q_ormq ORDER BY id")
        tasks = [SignedPackage.loads(payload) for (payload,) in cursor.fetchall()]
    return {task["args"][0]: task["timeout"] for task in tasks}


def test_maintenance_gives_a_job_without_a_deadline_its_whole_timeout(clean_jobs: None) -> None:
    grace = settings.JOB_TIMEOUT_GRACE_SECONDS
    undated = create_job(kind="demo.sleep", payload={}, timeout_seconds=120)[0]
    as_before_deadlines(undated)
    # A deadline 40 s away still caps the limit of a job that has one.
    near = create_job(kind="demo.sleep", payload={}, timeout_seconds=120, deadline_seconds=600)[0]
    shift_back(near.id, 560)
    lose_hand_off()
    assert run_maintenance().dispatched == 2
    limits = queued_timeouts()
    assert limits[str(undated.id)] == 120 + grace  # not 1 s + grace
    assert 39 + grace <= limits[str(near.id)] <= 41 + grace


def test_a_job_without_a_deadline_is_retried_and_retried_now(
    clean_jobs: None, settings: Any
) -> None:
    settings.JOB_RETRY_INITIAL_DELAY = settings.JOB_RETRY_MAX_DELAY = 0.01
    flaky = create_job(kind="demo.sleep", payload={"seconds": 0, "fail_times": 1})[0]
    as_before_deadlines(flaky)
    assert run_job(str(flaky.id)) == "retrying"
    flaky.refresh_from_db()
    assert (flaky.status, flaky.deadline_at, flaky.error_code) == (
        "queued",
        None,
        "DEMO_TRANSIENT_FAILURE",
    )
    assert "past the deadline" not in flaky.events.last().message
    Job.objects.filter(pk=flaky.pk).update(run_after=timezone.now())
    assert run_job(str(flaky.id)) == "succeeded"

    broken = create_job(
        kind="demo.sleep",
        payload={"seconds": 0, "fail_times": 9},
        max_attempts=1,
        timeout_seconds=120,
    )[0]
    as_before_deadlines(broken)
    assert run_job(str(broken.id)) == "failed"
    retry_job(job_id=broken.id)
    broken.refresh_from_db()
    assert (broken.status, broken.deadline_seconds, broken.deadline_at) == ("queued", None, None)
    lose_hand_off()  # the queue lost the retried job: maintenance hands it over again
    report = run_maintenance()
    assert (report.dispatched, report.past_deadline) == (1, 0)
    assert queued_timeouts() == {str(broken.id): 120 + settings.JOB_TIMEOUT_GRACE_SECONDS}


def test_a_job_without_a_deadline_waits_for_a_breaker_and_is_polled_as_usual(
    clean_jobs: None,
    upstream: tuple[str, Script],  # noqa: F811
    ops_user: Any,
    client_user: Any,
    api_as: Any,
) -> None:
    name, script = upstream
    force_open(name, ops_user, expires_in=3600)
    job = http_job(name, created_by=client_user)
    as_before_deadlines(job)
    assert run_job(str(job.id)) == f"waiting for breaker {name}"
    job.refresh_from_db()
    assert 3500 < (job.run_after - timezone.now()).total_seconds() <= 3600  # the retry-after
    message = job.events.last().message
    assert "no attempt spent" in message and "deadline" not in message
    assert run_maintenance().past_deadline == 0

    shift_back(job.id, 100)  # an old job: polled at the slowest pace, not "now"
    response = api_as(client_user).get(f"/api/v1/jobs/{job.id}/")
    body = response.json()
    assert (body["status"], body["deadline_seconds"], body["deadline_at"]) == ("queued", None, None)
    assert body["poll_after_seconds"] == 15 and response["X-Poll-After"] == "15"

    reset(name, ops_user)
    assert run_maintenance().woken == 1
    assert run_job(str(job.id)) == "succeeded"
    assert script.requests == 1
