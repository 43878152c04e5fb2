"""Finished jobs, with their events, are deleted JOB_RETENTION_DAYS after they finished."""

from __future__ import annotations

from io import StringIO
from typing import Any

from django.core.management import call_command
from django.db import connection

from jobs.actions import cancel_job, create_job
from jobs.models import Job, JobEvent


def test_finished_jobs_go_with_their_events_running_and_recent_ones_stay(
    clean_jobs: None, settings: Any
) -> None:
    settings.JOB_RETENTION_DAYS = 30
    old = [create_job(kind="demo.sleep", payload={"n": n})[0] for n in range(3)]
    for job in old:
        cancel_job(job_id=job.id)
    recent = create_job(kind="demo.sleep", payload={"n": 9})[0]
    cancel_job(job_id=recent.id)
    queued = create_job(kind="demo.sleep", payload={"n": 10})[0]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET finished_at = now() - interval '31 days', "
            "created_at = now() - interval '40 days' WHERE id = ANY(%s)",
            [[job.id for job in old]],
        )
        cursor.execute(  # an old job still queued is not finished: it stays
            "UPDATE jobs_job SET created_at = now() - interval '40 days' WHERE id = %s",
            [queued.id],
        )
    out = StringIO()
    call_command("purge_old_data", "--only", "jobs", stdout=out)
    assert "jobs: deleted 3" in out.getvalue()
    assert set(Job.objects.values_list("id", flat=True)) == {recent.id, queued.id}
    assert not JobEvent.objects.filter(job_id__in=[job.id for job in old]).exists()
