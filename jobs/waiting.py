"""Jobs wait, without spending an attempt, while their upstream's breaker refuses calls.

Two ways in, one way of waiting:

- before an attempt: the kind declares the breakers its payload will call
  (``job_handler(..., breakers=)``); when none of them permits, the job is not claimed;
- during an attempt: the handler raised ``CircuitOpenError`` (a breaker refused the call
  it made); the claim is given back with its attempt.

Either way the job is ``queued`` with ``waiting_for = "breaker <name>"`` and ``run_after``
at that breaker's retry-after (never past the job's deadline: the deadline sweep ends it
there with ``deadline_exceeded``), with an event row saying so. Maintenance wakes waiting
jobs as soon as their breaker permits again (an ops reset, a close seen by any process);
the claim that runs the job clears ``waiting_for``. The breaker state is the shared one
every process sees (``controlplane.breakers``), so a worker never waits on a stale view.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.conf import settings

from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.registry import registry as breaker_registry
from jobs import lifecycle, registry
from jobs.models import WAITING_FOR_BREAKER

logger = logging.getLogger("controlplane.jobs")

# A breaker about to permit (retry-after of a few ms) still costs a round through the queue:
# at least this long, so a job cannot spin against a breaker.
MIN_WAIT_SECONDS = 1.0

# The job about to be claimed, if it is due and nobody cancelled it.
_PEEK = """
SELECT kind, payload FROM jobs_job
WHERE id = %(id)s AND status = 'queued' AND cancel_requested_at IS NULL AND run_after <= now()
"""


def wait_seconds(refusal: CircuitOpenError) -> float:
    """How long a job waits for the breaker that refused: its retry-after, or (none known:
    forced open without an expiry) JOB_BREAKER_RECHECK_SECONDS; a reset wakes it sooner."""
    retry_after = getattr(refusal, "retry_after", None)
    if retry_after is None:
        return settings.JOB_BREAKER_RECHECK_SECONDS
    return max(MIN_WAIT_SECONDS, float(retry_after))


def refusal_for(kind: str, payload: dict[str, Any]) -> CircuitOpenError | None:
    """None when the job may run now: its kind declares no breakers, or one of them
    permits. Otherwise the refusal of the breaker that permits again first."""
    try:
        names = registry.breakers_for(kind, payload)
    except Exception:  # a payload the hook cannot read: let the handler fail it properly
        logger.warning("breakers hook of job kind %s failed; not waiting", kind, exc_info=True)
        return None
    refusals = []
    for name in names:
        refusal = breaker_registry.get(name).refusal()
        if refusal is None:
            return None
        refusals.append(refusal)
    return min(refusals, key=wait_seconds) if refusals else None


def _reason(refusal: CircuitOpenError) -> str:
    return f"{WAITING_FOR_BREAKER}{refusal.breaker_name}"


def _event_message(refusal: CircuitOpenError, when: str) -> str:
    seconds = math.ceil(wait_seconds(refusal))
    return (
        f"waiting for breaker {refusal.breaker_name} ({refusal.breaker_state}, {when}); "
        f"next try in {seconds} s at the latest"  # the statement adds the deadline, if any
    )


def wait_before_attempt(job_id: Any, *, db_wait: float) -> str | None:
    """Run before a worker claims the job: if none of its breakers permits, put it back to
    wait (no claim, no attempt) and say so; None when the claim should go ahead."""
    job = lifecycle.execute_one_durably(_PEEK, {"id": job_id}, wait_seconds=db_wait)
    if job is None:
        return None  # not claimable: the claim says why
    refusal = refusal_for(job["kind"], job["payload"] or {})
    if refusal is None:
        return None
    row = lifecycle.execute_one_durably(
        lifecycle.WAIT_BEFORE_ATTEMPT,
        {
            "id": job_id,
            "waiting_for": _reason(refusal),
            "wait": wait_seconds(refusal),
            "message": _event_message(refusal, "checked before the attempt"),
        },
        wait_seconds=db_wait,
    )
    if row is None:
        return None  # claimed, cancelled or past its deadline meanwhile: the claim decides
    return f"waiting for breaker {refusal.breaker_name}"


def wait_during_attempt(mine: dict[str, Any], refusal: CircuitOpenError, *, db_wait: float) -> str:
    """The handler met an open breaker: give the claim back with its attempt, and wait."""
    row = lifecycle.execute_one_durably(
        lifecycle.WAIT_DURING_ATTEMPT,
        {
            **mine,
            "waiting_for": _reason(refusal),
            "wait": wait_seconds(refusal),
            "message": _event_message(refusal, "raised during the attempt"),
        },
        wait_seconds=db_wait,
    )
    if row is None:
        return "lost the claim; stopped without writing"
    if row["status"] == "cancelled":
        return "cancelled"
    return f"waiting for breaker {refusal.breaker_name}"


def wake_waiting() -> int:
    """Due now: the waiting jobs whose breaker permits again before their retry-after.
    Returns how many were woken (dispatch hands them over on the same pass)."""
    woken = 0
    for row in lifecycle.execute(WAITING_REASONS, {}):
        reason = row["waiting_for"]
        if not reason.startswith(WAITING_FOR_BREAKER):
            continue
        if breaker_registry.get(reason.removeprefix(WAITING_FOR_BREAKER)).refusal() is None:
            woken += len(lifecycle.execute(WAKE_WAITING, {"waiting_for": reason}))
    return woken


# Not status changes, so they live here rather than in jobs.lifecycle.
WAITING_REASONS = """
SELECT DISTINCT waiting_for FROM jobs_job
WHERE status = 'queued' AND waiting_for <> '' AND run_after > now()
"""
WAKE_WAITING = """
UPDATE jobs_job SET run_after = now(), updated_at = now()
WHERE status = 'queued' AND waiting_for = %(waiting_for)s AND run_after > now()
RETURNING id
"""
