"""A committed job is answered as what it is; a failed hand-off to django-q2 is left to the
re-dispatcher (maintenance), which picks it up on its next pass.

The broker really fails here: a trigger on django-q2's queue table refuses the INSERT,
as a full disk, a lock timeout or a lost connection would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django_q.signing import SignedPackage

from jobs.actions import create_job
from jobs.maintenance import run_maintenance
from jobs.models import Job
from tests.jobs.conftest import events

REFUSE = """
CREATE SEQUENCE test_ormq_inserts;
CREATE FUNCTION test_refuse_ormq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('test_ormq_inserts') <= %s THEN
        RAISE EXCEPTION 'the broker is refusing work (test trigger)';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER test_refuse_ormq BEFORE INSERT ON django_q_ormq
    FOR EACH ROW EXECUTE FUNCTION test_refuse_ormq();
"""
RESTORE = """
DROP TRIGGER IF EXISTS test_refuse_ormq ON django_q_ormq;
DROP FUNCTION IF EXISTS test_refuse_ormq();
DROP SEQUENCE IF EXISTS test_ormq_inserts;
"""


@pytest.fixture
def broker_refuses(clean_jobs: None) -> Iterator[Callable[..., None]]:
    """``broker_refuses(n)``: django-q2's next ``n`` queue inserts fail (default: all of
    them); ``broker_refuses(0)`` mends it."""

    def refuse(inserts: int = 1_000_000) -> None:
        with connection.cursor() as cursor:
            cursor.execute(RESTORE)
            if inserts:
                cursor.execute(REFUSE % int(inserts))

    yield refuse
    refuse(0)


def queued_job_ids() -> list[str]:
    """The job ids django-q2 holds in its queue (each task's only argument)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM django_q_ormq ORDER BY id")
        return [SignedPackage.loads(payload)["args"][0] for (payload,) in cursor.fetchall()]


def test_it_answers_created_when_the_broker_refuses_the_job(
    broker_refuses: Callable[..., None], client_user: Any, api_as: Any
) -> None:
    broker_refuses()
    response = api_as(client_user).post(
        "/api/v1/jobs/", {"kind": "demo.sleep", "payload": {"seconds": 1}}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    job = Job.objects.get()  # one job, and it is the one the client was told about
    assert (str(job.id), job.status, body["status"]) == (body["id"], "queued", "queued")
    assert events(job.id) == [("", "queued")]
    assert queued_job_ids() == []
    # Not dispatched: the next maintenance pass hands it over, not one JOB_REDISPATCH later.
    assert job.dispatched_at is None

    broker_refuses(0)
    assert run_maintenance().dispatched == 1
    assert queued_job_ids() == [str(job.id)]
    job.refresh_from_db()
    assert job.dispatched_at is not None and job.status == "queued"


def test_retry_now_succeeds_when_the_broker_refuses_and_maintenance_dispatches_it(
    broker_refuses: Callable[..., None], ops_user: Any, client: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET status = 'failed', attempts = 3, error_code = 'x' WHERE id = %s;"
            "DELETE FROM django_q_ormq",
            [job.id],
        )
    broker_refuses()
    client.force_login(ops_user)
    page = client.post(
        "/admin/jobs/job/", {"action": "retry_jobs", "_selected_action": [job.pk]}, follow=True
    ).content.decode()
    assert f"Re-queued 1: {job.id}" in page
    job.refresh_from_db()
    assert (job.status, job.attempts, job.dispatched_at) == ("queued", 0, None)
    assert job.events.last().actor == ops_user.username
    assert queued_job_ids() == []

    broker_refuses(0)
    assert run_maintenance().dispatched == 1
    assert queued_job_ids() == [str(job.id)]


def test_maintenance_dispatches_the_rest_when_one_insert_fails(
    broker_refuses: Callable[..., None],
) -> None:
    first = create_job(kind="demo.sleep", payload={})[0]
    second = create_job(kind="demo.sleep", payload={})[0]
    with connection.cursor() as cursor:  # both due for (re)dispatch, first one first
        cursor.execute(
            "DELETE FROM django_q_ormq; UPDATE jobs_job SET dispatched_at = NULL,"
            " run_after = now() - CASE WHEN id = %s THEN interval '2 s' ELSE interval '1 s' END",
            [first.id],
        )
    broker_refuses(1)
    report = run_maintenance()
    assert (report.dispatched, report.dispatch_failed) == (1, 1)
    assert queued_job_ids() == [str(second.id)]
    # The refused one waits JOB_REDISPATCH_SECONDS (a broken broker is not hammered)...
    assert run_maintenance().dispatched == 0
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET dispatched_at = now() - interval '61 s' WHERE id = %s",
            [first.id],
        )
    # ... and is then handed over.
    assert run_maintenance().dispatched == 1
    assert queued_job_ids() == [str(second.id), str(first.id)]
