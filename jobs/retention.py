"""Retention of finished jobs (and their events): JOB_RETENTION_DAYS after they finished."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from controlplane.lib.retention import delete_in_batches

# Events first, in the same statement: a job's events go with it.
_DELETE_BATCH = """
WITH doomed AS (
    SELECT id FROM jobs_job
    WHERE status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
      AND finished_at < now() - make_interval(days => %(days)s)
    ORDER BY finished_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), events AS (
    DELETE FROM jobs_jobevent WHERE job_id = ANY(ARRAY(SELECT id FROM doomed))
)
DELETE FROM jobs_job WHERE id = ANY(ARRAY(SELECT id FROM doomed))
"""


def purge_finished_jobs(
    *, days: int | None = None, progress: Callable[[int], None] | None = None
) -> int:
    days = settings.JOB_RETENTION_DAYS if days is None else days
    return delete_in_batches(_DELETE_BATCH, {"days": days}, batch_size=1_000, progress=progress)
