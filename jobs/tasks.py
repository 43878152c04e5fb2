"""What django-q2 calls, by these dotted paths (stored in its queue and schedules)."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import asdict

from django.conf import settings
from django_q.exceptions import TimeoutException

from controlplane.lib import tracing
from controlplane.lib.metrics import JOB_DURATION, JOBS_FINISHED
from controlplane.lib.notifications import listener
from jobs import lifecycle, runner, waiting
from jobs.maintenance import run_maintenance
from jobs.retention import purge_finished_jobs

# What runner.run_claimed returns begins with one of these; the metric labels are the
# values (a fixed set: the timed-out sentence has a space in it).
OUTCOME_LABELS = {
    "succeeded": "succeeded",
    "failed": "failed",
    "retrying": "retrying",
    "cancelled": "cancelled",
    "timed": "timed_out",
    "timed_out": "timed_out",
    "interrupted": "interrupted",
    "lost": "lost_claim",
    "crashed": "crashed",
}


def outcome_label(outcome: str) -> str:
    """``outcome`` (a sentence) as a metric label."""
    return OUTCOME_LABELS.get(outcome.split(" ")[0].rstrip(":;"), "other")


def run_job(job_id: str) -> str:
    """Claim the job and run it; returns what happened (for django-q2's own records)."""
    # The listener is what notices a database gone silent and cuts a heartbeat stuck on it.
    listener.ensure_running()
    tracing.start_export()  # once per django-q2 worker process, after its fork
    if runner.draining is not None and runner.draining.is_set():
        lifecycle.execute(lifecycle.UNDISPATCH, {"id": job_id})  # another worker picks it up
        return "skipped: worker draining"
    # An upstream's breaker that refuses every call the job would make: the job waits in the
    # queue, its attempt not spent (jobs.waiting).
    waited = waiting.wait_before_attempt(job_id, db_wait=runner.outcome_wait_seconds())
    if waited is not None:
        return waited
    # A task delivered just before an outage waits for the database rather than failing:
    # failed, its job would wait JOB_REDISPATCH_SECONDS to be handed over again.
    job = lifecycle.execute_one_durably(
        lifecycle.CLAIM,
        {"id": job_id, "lease": settings.JOB_LEASE_SECONDS, "worker": runner.worker_identity()},
        wait_seconds=runner.outcome_wait_seconds(),
    )
    if job is None:
        return "skipped: not claimable (cancelled, already claimed, not due)"
    started = time.monotonic()
    outcome = "crashed"
    try:
        # A django-q2 worker is a child process that runs one job at a time.
        outcome = runner.run_claimed(job, own_process=multiprocessing.parent_process() is not None)
    except TimeoutException:
        outcome = "timed_out"  # django-q2's hard limit: it replaces this worker process
        raise
    finally:
        label = outcome_label(outcome)
        JOBS_FINISHED.labels(job["kind"], label).inc()
        JOB_DURATION.labels(job["kind"], label).observe(time.monotonic() - started)
    return outcome


def purge_jobs() -> int:
    return purge_finished_jobs()


def maintenance() -> dict[str, int]:
    """The schedule's entry (a safety net for plain `qcluster`; runworker runs it each second)."""
    return asdict(run_maintenance())
