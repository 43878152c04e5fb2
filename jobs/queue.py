"""Handing a job to django-q2: only its id travels; the Job row stays the truth.

A hand-off happens after the job's transaction commits, so it can fail while the
job already exists. It never raises into the caller: the job is answered as what it
is (created, re-queued) and one that was not handed over is dispatched again by
maintenance (``DISPATCH_DUE``), which re-sends every queued job whose ``dispatched_at``
is empty or older than JOB_REDISPATCH_SECONDS. A hand-off that failed with the database
leaves the mark in place (clearing it fails too): the worker's first maintenance pass
that works after the outage re-sends the jobs marked around it (``jobs.worker``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django_q.tasks import async_task

from jobs import lifecycle

logger = logging.getLogger("controlplane.jobs")


def enqueue(job_id: Any, timeout_seconds: int) -> None:
    """Queue one run of the job now (raises whatever the broker raises)."""
    async_task(
        "jobs.tasks.run_job",
        str(job_id),
        q_options={
            "timeout": int(timeout_seconds) + settings.JOB_TIMEOUT_GRACE_SECONDS,
            "task_name": f"job {job_id}",
        },
    )


def dispatch_on_commit(job_id: Any, timeout_seconds: int) -> None:
    """Hand the job to django-q2 once the caller's transaction commits.

    The caller marks the job dispatched (``dispatched_at``) in that transaction, so
    maintenance does not send it a second time meanwhile. If the hand-off fails, the
    mark is cleared and the next maintenance pass (every JOB_MAINTENANCE_SECONDS) sends it.
    """
    transaction.on_commit(lambda: _dispatch_now(job_id, timeout_seconds))


def _dispatch_now(job_id: Any, timeout_seconds: int) -> None:
    try:
        enqueue(job_id, timeout_seconds)
    except Exception:  # any broker fault (ORM or Redis): the job itself is committed
        logger.warning(
            "job %s is committed but was not handed to the queue; maintenance will dispatch it",
            job_id,
            exc_info=True,
        )
        try:
            lifecycle.execute(lifecycle.UNDISPATCH, {"id": job_id})
        except DatabaseError as exc:
            logger.warning(
                "job %s keeps its dispatch mark (%s); it is dispatched again once worker "
                "maintenance works after the outage, or after JOB_REDISPATCH_SECONDS",
                job_id,
                exc,
            )
