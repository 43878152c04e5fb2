"""Running one claimed job inside a django-q2 worker: the handler, then its outcome.

Every outcome is written by a lifecycle statement that names this claim, so a
worker that lost the job (reaped, cancelled, timed out) changes nothing.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
from typing import Any

from django.conf import settings
from django_q.exceptions import TimeoutException

from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.errors.exceptions import InternalServerError, UserFacingError, to_user_facing
from controlplane.errors.recording import job_context, record_error
from controlplane.errors.scrubbing import default_scrubber
from controlplane.lib import correlation, dbgate, tracing
from controlplane.resilience.budget import RetryBudgetExhaustedError
from controlplane.resilience.client import refusals_wait
from controlplane.resilience.retry import RetryPolicy, continuing, is_retryable
from jobs import lifecycle, outcomes, waiting, wakeups
from jobs.context import (
    DatabaseAway,
    Heartbeat,
    JobCancelled,
    JobContext,
    JobLost,
    JobTimedOut,
    WorkerShuttingDown,
)
from jobs.registry import get_handler

logger = logging.getLogger("controlplane.jobs")

# Set by `runworker` before its cluster forks; lets it find (and drain) its own jobs.
WORKER_ENV = "CONTROLPLANE_WORKER_ID"
draining = None  # a multiprocessing.Event shared with runworker, when run under it


def worker_identity() -> str:
    owner = os.environ.get(WORKER_ENV) or f"{socket.gethostname()}:{os.getppid()}"
    return f"{owner}/{os.getpid()}"


def _stored_message(text: str) -> str:
    """A failure as the job and its events keep it (support reads it in the admin): the
    exception text may quote the payload, secrets included."""
    return default_scrubber().text(text[:5000])


def _record(error: UserFacingError, job: dict[str, Any]) -> str:
    record_error(error, service=f"job:{job['kind']}", job_id=job["id"])
    return str(error.support_id)


# Requeues of one job for the database being away that do not count as attempts.
MAX_UNCHARGED_REQUEUES = 5


def _write(statement: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """An outcome, written even if the database restarts meanwhile (claim-fenced)."""
    return lifecycle.execute_one_durably(statement, params, wait_seconds=outcome_wait_seconds())


def outcome_wait_seconds() -> float:
    """How long a worker waits for the database to write a job's outcome: past the lease
    the reaper decides, and the claim-fenced write changes nothing."""
    return settings.JOB_LEASE_SECONDS * 2


def _end_this_process() -> None:
    """The handler cannot be stopped from another thread, and once the lease lapses another
    worker may claim the job: end this worker process (django-q2 starts a new one). No
    flushing first: a blocked log handler must not delay the kill past the lease."""
    os.kill(os.getpid(), signal.SIGKILL)


def run_claimed(job: dict[str, Any], *, own_process: bool = False) -> str:
    """Run the handler of a job this worker just claimed; returns what happened.

    The attempt is a span in the trace of the request that created the job, under that
    request's id: its error records, log lines and outgoing calls belong to that request.

    ``own_process``: this process runs nothing else (a django-q2 worker), so it may end
    itself when the lease is about to lapse while the database is away."""
    attributes = {"job.id": str(job["id"]), "job.kind": job["kind"], "job.attempt": job["attempts"]}
    with (
        tracing.continued(job.get("traceparent") or "", f"job {job['kind']}", **attributes),
        correlation.request_scope(job.get("request_id") or ""),
        correlation.job_scope(str(job["id"])),
    ):
        return _run_claimed(job, own_process=own_process)


def _run_claimed(job: dict[str, Any], *, own_process: bool) -> str:
    attempt = job["attempts"]
    handler = get_handler(job["kind"])
    ctx = JobContext(
        job_id=str(job["id"]),
        claim_id=job["claim_id"],
        attempt=attempt,
        max_attempts=job["max_attempts"],
        payload=job["payload"] or {},
        micro_id=job["micro_id"],
        micro_uuid=job["micro_uuid"],
    )
    mine = {"id": job["id"], "claim": job["claim_id"]}
    try:
        if handler is None:
            raise InternalServerError(
                code="UNKNOWN_JOB_KIND", technical_message=f"no handler for kind {job['kind']!r}"
            )
        with (
            Heartbeat(ctx, _end_this_process if own_process else None),
            wakeups.interruptible(ctx),  # a cancel's NOTIFY reaches this handler's checkpoints
            job_context(ctx.job_id),
            refusals_wait(),  # a breaker refusal becomes a wait below, not an error record
            continuing(_earlier_attempt(job) if attempt > 1 else None),
        ):
            result = handler(ctx, ctx.payload)
        _check_json(result)
    except JobCancelled:
        _write(lifecycle.CANCELLED_BY_HANDLER, mine)
        return "cancelled"
    except DatabaseAway as exc:
        return _requeue_uncharged(job, mine, attempt, exc)
    except (JobTimedOut, TimeoutException) as exc:
        # The claim capped this attempt's time limit at the job's deadline: running out of it
        # then is the deadline, whatever the attempt's own timeout.
        if job.get("deadline_bound"):
            user_message, code = outcomes.DEADLINE_EXCEEDED, outcomes.DEADLINE_CODE
        else:
            user_message, code = outcomes.TIMEOUT, outcomes.TIMEOUT_CODE
        error = InternalServerError(user_message, code=code, technical_message=str(exc))
        _write(
            lifecycle.TIMED_OUT,
            {
                **mine,
                "code": code,
                "message": _stored_message(str(exc)),
                "user_message": user_message,
                "support_id": _record(error, job),
            },
        )
        if isinstance(exc, TimeoutException):
            raise  # django-q2 replaces the worker process
        return "timed out"
    except WorkerShuttingDown:
        finish_interrupted(job["id"], job["claim_id"], job["kind"])
        return "interrupted by shutdown"
    except JobLost:
        return "lost the claim; stopped without writing"
    except lifecycle.DATABASE_AWAY as exc:
        if not (dbgate.is_unreachable() or dbgate.means_unreachable(exc)):
            return _failed(job, mine, attempt, exc)
        # The handler's own queries lost the database (a restart, a failover): not the
        # job's fault.
        return _requeue_uncharged(job, mine, attempt, exc)
    except CircuitOpenError as exc:
        # An upstream's breaker refused: not the job's fault, and retrying now cannot help.
        return waiting.wait_during_attempt(mine, exc, db_wait=outcome_wait_seconds())
    except Exception as exc:
        return _failed(job, mine, attempt, exc)
    succeeded = {**mine, "result": result, "result_url": ""}
    if _write(lifecycle.SUCCEED, succeeded) is None:
        # A cancel arrived after the last checkpoint: cancelled, and the result is dropped.
        if _write(lifecycle.CANCELLED_BY_HANDLER, mine) is not None:
            return "cancelled (result discarded)"
        return "lost the claim; result discarded"
    return "succeeded"


def _earlier_attempt(job: dict[str, Any]) -> str:
    """What a later attempt retries, for a budget that refuses it (the upstream calls it
    repeats are retries of the earlier attempt's: they spend the upstream's budget)."""
    code = job.get("error_code") or "no error recorded"
    return f"attempt {job['attempts'] - 1} of job {job['id']} failed ({code})"


def _requeue_uncharged(
    job: dict[str, Any], mine: dict[str, Any], attempt: int, exc: Exception
) -> str:
    """Back to the queue with the attempt not counted, at most MAX_UNCHARGED_REQUEUES
    times per job: past that (a handler whose query itself brings the database down, say)
    the failure is charged like any other."""
    if _write(lifecycle.REQUEUE_DATABASE_AWAY, {**mine, "most": MAX_UNCHARGED_REQUEUES}):
        return "interrupted: database away"
    return _failed(job, mine, attempt, exc)


def _check_json(result: Any) -> None:
    """A result that cannot be stored fails the job now, inside the guarded block; raised
    later it would leave the job running until its lease ran out, and then re-run it."""
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise InternalServerError(
            "The job produced a result that cannot be stored.",
            code="invalid_result",
            technical_message=f"handler result is not JSON: {exc}",
            original=exc,
        ) from exc


def _failed(job: dict[str, Any], mine: dict[str, Any], attempt: int, exc: Exception) -> str:
    error = to_user_facing(exc)
    if error.code == "INTERNAL_ERROR":
        error.code = "processing_error"
    retryable = is_retryable(exc) or (isinstance(exc, UserFacingError) and exc.retryable)
    # The upstream's retry budget refused a retry: the job fails now, as a caller waiting
    # for the answer would. Re-queued, its next attempt would be one more retry for the
    # budget to refuse, and unlike a breaker no event says when the budget is free again.
    budget_refused = isinstance(exc, RetryBudgetExhaustedError)
    final = not retryable or budget_refused or attempt >= job["max_attempts"]
    delay = 0.0
    if not final:
        policy = RetryPolicy(
            initial_delay=settings.JOB_RETRY_INITIAL_DELAY,
            max_delay=settings.JOB_RETRY_MAX_DELAY,
            jitter="full",
        )
        delay = policy.backoff(attempt)
    if final:
        _record(error, job)
    row = _write(
        lifecycle.FAIL_OR_RETRY,
        {
            **mine,
            "final": final,
            "delay": delay,
            "code": error.code,
            "message": _stored_message(error.technical_message),
            "user_message": outcomes.stored_user_message(error.user_message),
            "support_id": str(error.support_id),
        },
    )
    if row is None and _write(lifecycle.CANCELLED_BY_HANDLER, mine) is not None:
        return "cancelled"
    if row is not None and row["status"] == "failed" and not final:
        # Retryable, but the retry would start past the deadline: the job failed now, and
        # the support_id it shows must resolve.
        final = True
        _record(error, job)
    logger.info(
        "job %s attempt %s failed (%s); %s",
        job["id"],
        attempt,
        error.code,
        "final" if final else f"retry in {delay:.2f}s",
    )
    return "failed" if final else "retrying"


def finish_interrupted(job_id: Any, claim_id: Any, kind: str) -> None:
    """A job stopped by a worker shutdown (at a checkpoint, or killed after the drain time):
    re-queued with its attempt not counted, or failed with ``worker_shutdown``
    (JOB_SHUTDOWN_ACTION). A job whose cancel was requested ends cancelled either way."""
    requeue = settings.JOB_SHUTDOWN_ACTION == "requeue"
    support_id = None
    if not requeue:
        error = InternalServerError(outcomes.WORKER_SHUTDOWN, code="worker_shutdown")
        support_id = _record(error, {"id": job_id, "kind": kind})
    _write(
        lifecycle.SHUTDOWN,
        {
            "id": job_id,
            "claim": claim_id,
            "requeue": requeue,
            "support_id": support_id,
            "user_message": outcomes.WORKER_SHUTDOWN,
        },
    )
