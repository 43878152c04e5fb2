"""Handing a job to django-q2: only its id travels; the Job row stays the truth."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_q.tasks import async_task


def enqueue(job_id: Any, timeout_seconds: int) -> None:
    """Queue one run of the job (call it from ``transaction.on_commit``)."""
    async_task(
        "jobs.tasks.run_job",
        str(job_id),
        q_options={
            "timeout": int(timeout_seconds) + settings.JOB_TIMEOUT_GRACE_SECONDS,
            "task_name": f"job {job_id}",
        },
    )
