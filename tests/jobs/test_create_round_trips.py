"""A job create is one statement for its rows (job, event, idempotency check), then the
hand-off to django-q2 after the commit; a batch is one statement for all of its rows."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.actions import create_job
from jobs.models import Job, JobEvent


def statements(captured: CaptureQueriesContext) -> list[str]:
    """What went to the database, transaction control left out."""
    return [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].strip().upper() not in ("BEGIN", "COMMIT", "ROLLBACK")
    ]


def test_it_creates_a_job_in_one_statement_then_hands_it_over(
    clean_jobs: None, client_user: Any
) -> None:
    with CaptureQueriesContext(connection) as captured:
        job, created = create_job(kind="demo.sleep", payload={"seconds": 0}, created_by=client_user)
    sent = statements(captured)
    assert created and len(sent) == 2, sent
    rows, dispatch = sent
    assert "INSERT INTO jobs_job" in rows and "INSERT INTO jobs_jobevent" in rows
    assert "django_q_ormq" in dispatch  # after the statement committed (no atomic here)
    assert "BEGIN" not in [q["sql"] for q in captured.captured_queries]
    stored = Job.objects.get(pk=job.id)
    assert (stored.status, stored.created_by_id, stored.dispatched_at is not None) == (
        "queued",
        client_user.pk,
        True,
    )
    assert job.db_now == stored.created_at  # read with the statement's own clock
    assert (stored.deadline_at - stored.created_at).total_seconds() == job.deadline_seconds
    event = JobEvent.objects.get(job=job)
    assert (event.to_status, event.actor, event.created_at) == (
        "queued",
        client_user.username,
        stored.created_at,
    )


def test_a_keyed_create_and_its_replay_are_one_statement_each(
    clean_jobs: None, client_user: Any
) -> None:
    arguments = {"kind": "demo.sleep", "payload": {"seconds": 0}, "created_by": client_user}
    with CaptureQueriesContext(connection) as first:
        job, created = create_job(idempotency_key="k-1", **arguments)
    with CaptureQueriesContext(connection) as replay:
        again, created_again = create_job(idempotency_key="k-1", **arguments)
    assert (created, created_again, again.id) == (True, False, job.id)
    assert len(statements(first)) == 2 and len(statements(replay)) == 1
    assert JobEvent.objects.filter(job=job).count() == 1


def test_the_api_spends_one_statement_on_the_rows(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    body = {"kind": "demo.sleep", "payload": {"seconds": 0}}
    with CaptureQueriesContext(connection) as single:
        assert api.post("/api/v1/jobs/", body, format="json").status_code == 201
    with CaptureQueriesContext(connection) as batch:
        response = api.post("/api/v1/jobs/batch/", {"jobs": [body] * 20}, format="json")
    assert response.status_code == 201
    for captured, dispatched in ((single, 1), (batch, 20)):
        sent = statements(captured)
        assert len([sql for sql in sent if "jobs_job" in sql]) == 1, sent
        assert len([sql for sql in sent if "django_q_ormq" in sql]) == dispatched
