"""Housekeeping shared by every worker: time out overdue jobs and jobs past their deadline,
recover lost ones, wake jobs whose breaker permits again, dispatch.

Runs every JOB_MAINTENANCE_SECONDS inside `runworker`, and once a minute as a
django-q2 schedule (so plain `qcluster` deployments recover too). Every
statement claims rows with FOR UPDATE SKIP LOCKED, so any number of workers
may run it at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal

from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.recording import record_error
from jobs import lifecycle, outcomes
from jobs.queue import enqueue
from jobs.waiting import wake_waiting

logger = logging.getLogger("controlplane.jobs")

# Sent after every maintenance pass (sender=None, report): the periodic hook that layers
# above jobs use for their own housekeeping (e.g. health's alert conditions). A receiver
# that raises is logged; maintenance goes on.
maintenance_pass = Signal()


@dataclass
class MaintenanceReport:
    timed_out: int = 0
    past_deadline: int = 0  # queued (or waiting) jobs whose deadline passed
    woken: int = 0  # waiting jobs whose breaker permits again
    requeued: int = 0
    failed_lost: int = 0
    dispatched: int = 0  # handed to django-q2
    dispatch_failed: int = 0  # refused by it: tried again after JOB_REDISPATCH_SECONDS


def _record_final(rows: list[dict[str, Any]]) -> None:
    """The error record of each job a statement ended, with the code and messages the
    statement gave the job (so the job body and the record say the same)."""
    for row in rows:
        if row.get("error_support_id"):
            error = InternalServerError(
                row["error_user_message"] or None,
                code=row["error_code"],
                technical_message=row["error_message"] or None,
                support_id=row["error_support_id"],
            )
            record_error(error, service=f"job:{row['kind']}", job_id=row["id"])


def time_out_overdue(job_id: Any = None, actor: str = "reaper") -> list[dict[str, Any]]:
    """Running jobs past this attempt's time limit (``deadline_exceeded`` when that limit
    was the job's deadline)."""
    rows = lifecycle.execute(
        lifecycle.TIMEOUT_IF_OVERDUE, {"id": job_id, "actor": actor, **outcomes.deadline_params()}
    )
    _record_final(rows)
    return rows


def expire_past_deadline(job_id: Any = None, actor: str = "reaper") -> list[dict[str, Any]]:
    """Queued or waiting jobs whose deadline passed: timed out, ``deadline_exceeded``. Needs
    no worker: a client reading its job runs it for that job (``jobs.actions.read_job``)."""
    rows = lifecycle.execute(
        lifecycle.EXPIRE_PAST_DEADLINE,
        {"id": job_id, "actor": actor, **outcomes.deadline_params()},
    )
    _record_final(rows)
    return rows


def run_maintenance(*, resend_marked_within: float | None = None) -> MaintenanceReport:
    """One pass. ``resend_marked_within`` (seconds): also hand over again the queued jobs
    marked dispatched that recently (the worker's first pass after a failed one: a hand-off
    made just before the database went away may have been lost with it)."""
    report = MaintenanceReport()
    report.timed_out = len(time_out_overdue())
    lost = lifecycle.execute(lifecycle.REAP_LOST, {"user_message": outcomes.WORKER_LOST})
    report.requeued = sum(1 for row in lost if row["status"] == "queued")
    report.failed_lost = len(lost) - report.requeued
    _record_final(lost)
    report.past_deadline = len(expire_past_deadline())
    report.woken = wake_waiting()
    with transaction.atomic():
        due = lifecycle.execute(
            lifecycle.DISPATCH_DUE,
            {
                "redispatch": settings.JOB_REDISPATCH_SECONDS,
                "resend": resend_marked_within,
                "limit": 500,
            },
        )
        transaction.on_commit(lambda: _hand_over(due, report))
    if report.timed_out or lost or due or report.past_deadline or report.woken:
        logger.info("job maintenance: %s", report)
    for receiver, result in maintenance_pass.send_robust(sender=None, report=report):
        if isinstance(result, Exception):
            logger.error("maintenance receiver %r failed: %r", receiver, result, exc_info=result)
    return report


def _hand_over(due: list[dict[str, Any]], report: MaintenanceReport) -> None:
    """Send each due job to django-q2. One refused job does not stop the others; it keeps
    its dispatch mark, so a broken broker is tried once per JOB_REDISPATCH_SECONDS per job,
    not on every pass."""
    first_error: Exception | None = None
    for row in due:
        try:
            enqueue(row["id"], row["timeout_seconds"])
        except Exception as exc:  # any broker fault: the next due pass tries again
            report.dispatch_failed += 1
            first_error = first_error or exc
        else:
            report.dispatched += 1
    if first_error is not None:
        logger.warning(
            "%d of %d due jobs were not handed to the queue (first error: %s); "
            "they are dispatched again after JOB_REDISPATCH_SECONDS",
            report.dispatch_failed,
            len(due),
            first_error,
        )
