"""A job whose run met the database going away is not charged the attempt (a bounded
number of times), and one whose handler failed for another reason is."""

from __future__ import annotations

from typing import Any

import psycopg
from django.db import OperationalError

from jobs.actions import create_job
from jobs.models import JobEvent
from jobs.registry import job_handler
from jobs.runner import MAX_UNCHARGED_REQUEUES
from jobs.tasks import run_job

AWAY = "stopped while the database was unreachable; attempt not counted"


@job_handler("test.database_lost")
def _database_lost(ctx: Any, payload: dict[str, Any]) -> Any:
    # What Django raises when the server closes the connection under a query (a restart).
    cause = psycopg.OperationalError("server closed the connection unexpectedly")
    raise OperationalError("server closed the connection unexpectedly") from cause


@job_handler("test.statement_timeout")
def _statement_timeout(ctx: Any, payload: dict[str, Any]) -> Any:
    # The database answered: the query itself was too slow. The job's own failure.
    raise OperationalError("canceling statement") from psycopg.errors.QueryCanceled()


def test_a_lost_connection_requeues_the_job_without_charging_it(clean_jobs: None) -> None:
    job = create_job(kind="test.database_lost", payload={}, max_attempts=1)[0]
    for _ in range(MAX_UNCHARGED_REQUEUES):
        assert run_job(str(job.id)) == "interrupted: database away"
        job.refresh_from_db()
        assert (job.status, job.attempts, job.error_code) == ("queued", 0, "")
    # Past the bound (a handler whose query brings the database down, say) it is charged.
    assert run_job(str(job.id)) == "failed"
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("failed", 1)
    assert JobEvent.objects.filter(job=job, message=AWAY).count() == MAX_UNCHARGED_REQUEUES


def test_a_database_that_answered_with_an_error_is_the_jobs_failure(clean_jobs: None) -> None:
    job = create_job(kind="test.statement_timeout", payload={}, max_attempts=1)[0]
    assert run_job(str(job.id)) == "failed"
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("failed", 1)
    assert not JobEvent.objects.filter(job=job, message=AWAY).exists()
