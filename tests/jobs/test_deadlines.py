"""A job's deadline covers its queueing, every attempt and the waits between them; past it
the job is timed_out with deadline_exceeded, whether or not any worker runs."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection

from controlplane.errors.models import ErrorRecord
from jobs.actions import create_job
from jobs.maintenance import run_maintenance
from jobs.models import Job
from jobs.tasks import run_job
from tests.errors.helpers import assert_envelope
from tests.jobs.conftest import events, wait_status


def shift_back(job_id: Any, seconds: float) -> None:
    """Inject time: the job was created (and its deadline set) ``seconds`` earlier."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET created_at = created_at - make_interval(secs => %s), "
            "deadline_at = deadline_at - make_interval(secs => %s), "
            "run_after = run_after - make_interval(secs => %s) WHERE id = %s",
            [seconds, seconds, seconds, job_id],
        )


def test_a_job_nobody_runs_times_out_at_its_deadline(
    clean_jobs: None, client_user: Any, support_user: Any, api_as: Any
) -> None:
    # No worker, no maintenance: only the client's reads, following the polling advice.
    api = api_as(client_user)
    created = api.post(
        "/api/v1/jobs/", {"kind": "demo.sleep", "deadline_seconds": 5}, format="json"
    ).json()
    advice = [created["poll_after_seconds"]]
    body = created
    started = time.monotonic()
    while body["status"] == "queued" and time.monotonic() - started < 15:
        time.sleep(body["poll_after_seconds"])
        body = api.get(f"/api/v1/jobs/{created['id']}/").json()
        advice.append(body["poll_after_seconds"])
    assert (body["status"], body["error"]["code"]) == ("timed_out", "deadline_exceeded")
    assert advice == [1, 2, 2, None]  # polls at 0, 1, 3 and 5 s: the last one at the deadline
    job = Job.objects.get(pk=created["id"])
    assert 5 <= (job.finished_at - job.created_at).total_seconds() < 6.5
    assert job.deadline_at == job.created_at + timedelta(seconds=5)
    assert job.attempts == 0
    support_id = body["error"]["support_id"]
    assert body["error"]["message"] == (
        f"The job did not finish before its deadline. (Reference: {support_id})"
    )
    assert events(job.id) == [("", "queued"), ("queued", "timed_out")]
    assert "detected by reader" in job.events.last().message
    record = api_as(support_user).get(f"/api/v1/errors/{support_id}/").json()["record"]
    assert (record["code"], record["job_id"]) == ("deadline_exceeded", created["id"])


def test_the_deadline_is_set_on_the_database_clock_and_shown(
    clean_jobs: None, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.JOB_DEFAULT_DEADLINE_SECONDS = 1800
    api = api_as(client_user)
    default = api.post("/api/v1/jobs/", {"kind": "demo.sleep"}, format="json").json()
    assert (default["deadline_seconds"], default["timeout_seconds"]) == (1800, 600)
    job = Job.objects.get(pk=default["id"])
    assert job.deadline_at - job.created_at == timedelta(seconds=1800)  # one statement's now()
    assert default["deadline_at"] and default["waiting_for"] == ""
    # A deadline alone shortens the default timeout so one attempt fits in it.
    short = api.post(
        "/api/v1/jobs/", {"kind": "demo.sleep", "deadline_seconds": 30}, format="json"
    ).json()
    assert (short["deadline_seconds"], short["timeout_seconds"]) == (30, 30)


def test_a_deadline_must_leave_room_for_one_attempt_and_stay_under_the_maximum(
    clean_jobs: None, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.JOB_MAX_DEADLINE_SECONDS = 7200
    api = api_as(client_user)
    for body in (
        {"kind": "demo.sleep", "timeout_seconds": 60, "deadline_seconds": 30},
        {"kind": "demo.sleep", "deadline_seconds": 7201},
    ):
        assert_envelope(api.post("/api/v1/jobs/", body, format="json"), 422, "INVALID_DEADLINE")
    assert not Job.objects.exists()


def test_the_sweep_times_out_queued_jobs_past_their_deadline(clean_jobs: None) -> None:
    due, not_yet = (create_job(kind="demo.sleep", payload={}, deadline_seconds=60)[0] for _ in "ab")
    shift_back(due.id, 61)
    report = run_maintenance()
    assert report.past_deadline == 1
    due.refresh_from_db()
    assert (due.status, due.error_code) == ("timed_out", "deadline_exceeded")
    assert ErrorRecord.objects.get(support_id=due.error_support_id).code == "deadline_exceeded"
    assert Job.objects.get(pk=not_yet.id).status == "queued"
    # A job past its deadline is never claimed, whoever delivers it.
    late = create_job(kind="demo.sleep", payload={}, deadline_seconds=60)[0]
    shift_back(late.id, 61)
    assert run_job(str(late.id)).startswith("skipped")
    assert Job.objects.get(pk=late.id).attempts == 0


def test_a_retry_is_never_scheduled_past_the_deadline(
    clean_jobs: None, settings: Any, monkeypatch: Any
) -> None:
    # Backoff of ~60 s (jitter pinned near its top) after a retryable failure.
    settings.JOB_RETRY_INITIAL_DELAY = settings.JOB_RETRY_MAX_DELAY = 60
    monkeypatch.setattr(random, "random", lambda: 0.999)
    payload = {"seconds": 0, "fail_times": 1}
    roomy = create_job(kind="demo.sleep", payload=payload, max_attempts=3, deadline_seconds=600)
    tight = create_job(kind="demo.sleep", payload=payload, max_attempts=3, deadline_seconds=30)
    assert run_job(str(roomy[0].id)) == "retrying"
    assert run_job(str(tight[0].id)) == "failed"
    job = Job.objects.get(pk=tight[0].id)
    assert (job.status, job.error_code, job.attempts) == ("failed", "DEMO_TRANSIENT_FAILURE", 1)
    assert "not retried: the retry would start past the deadline" in job.events.last().message
    # The support_id it shows resolves, like any final failure's.
    assert ErrorRecord.objects.get(support_id=job.error_support_id).job_id == job.id
    assert Job.objects.get(pk=roomy[0].id).status == "queued"


@pytest.mark.slow
def test_a_running_job_stops_at_its_deadline_across_attempts(start_worker: Any) -> None:
    # Attempt 1 fails at once; attempt 2 would run 30 s. Its time limit is not its claim +
    # timeout_seconds (3 s) but the job's deadline: 3 s after the job was created.
    start_worker()
    job = create_job(
        kind="demo.sleep",
        payload={"seconds": 30, "fail_times": 1},
        timeout_seconds=3,
        deadline_seconds=3,
    )[0]
    done = wait_status(job.id, {"succeeded", "failed", "timed_out"}, seconds=15)
    assert (done.status, done.error_code, done.attempts) == ("timed_out", "deadline_exceeded", 2)
    assert done.timeout_at == done.deadline_at == done.created_at + timedelta(seconds=3)
    assert (done.finished_at - done.created_at).total_seconds() < 4.5
    assert done.error_user_message == "The job did not finish before its deadline."
    assert record_of(done).code == "deadline_exceeded"
    assert events(job.id)[-1] == ("running", "timed_out")


def record_of(job: Job, seconds: float = 5) -> ErrorRecord:
    """The job's error record. When the reaper (not the worker) ended the job, it writes the
    record right after the row it changed: the two are moments apart, not one statement."""
    deadline = time.monotonic() + seconds
    while True:
        record = ErrorRecord.objects.filter(support_id=job.error_support_id).first()
        if record is not None:
            return record
        assert time.monotonic() < deadline, f"no error record {job.error_support_id}"
        time.sleep(0.05)
