"""Jobs wait, without spending an attempt, while their upstream's breaker refuses calls.

Two ways in, one way of waiting:

- before an attempt: the kind declares the breakers its payload will call
  (``job_handler(..., breakers=)``); when none of them permits, the job is not claimed;
- during an attempt: the handler raised ``CircuitOpenError`` (a breaker refused the call
  it made, or every breaker of a provider group did); the claim is given back with its
  attempt.

Either way the job is ``queued`` with ``waiting_for`` saying what it waits for ("breaker
<name>", "group <name>") and ``waiting_breakers`` listing the breakers, ``run_after`` at the
earliest retry-after among them (never past the job's deadline: the deadline sweep ends it
there with ``deadline_exceeded``), with an event row saying so. Maintenance wakes a waiting
job as soon as any of its breakers permits again (an ops reset, a close seen by any
process); the claim that runs the job clears both columns. The breaker state is the shared
one every process sees (``controlplane.breakers``), so a worker never waits on a stale view.

A half-open breaker lets only its probes through: maintenance wakes no more jobs than it has
free probe slots, and a job refused because every slot is taken waits until the first
probe's lease could end (the probe's result, a close or a reopen, wakes it sooner). A
refusal that becomes a wait writes no ErrorRecord (``refusals_wait``): nobody is shown an
error for it, and one record per wait would grow with the wait.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.registry import registry as breaker_registry
from jobs import lifecycle, registry
from jobs.models import WAITING_FOR_BREAKER, WAITING_FOR_GROUP

logger = logging.getLogger("controlplane.jobs")

# A breaker about to permit (retry-after of a few ms) still costs a round through the queue:
# at least this long, so a job cannot spin against a breaker.
MIN_WAIT_SECONDS = 1.0
_LABEL_LENGTH = 120  # Job.waiting_for

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


@dataclass(frozen=True)
class Wait:
    """What a job waits for: shown as ``label``, woken when any of ``refusals``' breakers
    permits, at the latest after the shortest of their waits."""

    label: str
    refusals: list[CircuitOpenError]

    @property
    def breakers(self) -> list[str]:
        return list(dict.fromkeys(refusal.breaker_name for refusal in self.refusals))

    @property
    def seconds(self) -> float:
        return min(wait_seconds(refusal) for refusal in self.refusals)

    def params(self, when: str) -> dict[str, Any]:
        """The wait statements' parameters (the statement adds the deadline to the event)."""
        states = ", ".join(f"{r.breaker_name} {r.breaker_state}" for r in self.refusals)
        if len(self.refusals) == 1:
            states = self.refusals[0].breaker_state
        return {
            "waiting_for": self.label,
            "breakers": self.breakers,
            "wait": self.seconds,
            "message": f"waiting for {self.label} ({states}, {when}); "
            f"next try in {math.ceil(self.seconds)} s at the latest",
        }


def _label(names: list[str]) -> str:
    if len(names) == 1:
        return f"{WAITING_FOR_BREAKER}{names[0]}"
    label = "breakers " + ", ".join(names)
    return label if len(label) <= _LABEL_LENGTH else label[: _LABEL_LENGTH - 1] + "…"


def wait_for(kind: str, payload: dict[str, Any]) -> Wait | None:
    """None when the job may run now: its kind declares no breakers, or one of them
    permits. Otherwise what it waits for: every one of them."""
    try:
        declared = registry.breakers_for(kind, payload)
    except Exception:  # a payload the hook cannot read: let the handler fail it properly
        logger.warning("breakers hook of job kind %s failed; not waiting", kind, exc_info=True)
        return None
    refusals = []
    for name in declared.names:
        refusal = breaker_registry.get(name).refusal()
        if refusal is None:
            return None
        refusals.append(refusal)
    if not refusals:
        return None
    return Wait(declared.label or _label(declared.names), refusals)


def wait_from(refusal: CircuitOpenError) -> Wait:
    """What a refusal raised during the attempt makes the job wait for: the breaker that
    refused, or every breaker of the provider group that did."""
    refusals = getattr(refusal, "refusals", None)
    group = refusal.metadata.get("group")
    if refusals and group:
        return Wait(f"{WAITING_FOR_GROUP}{group}", list(refusals))
    return Wait(_label([refusal.breaker_name]), [refusal])


def wait_before_attempt(job_id: Any, *, db_wait: float) -> str | None:
    """Run before a worker claims the job: if none of its breakers permits, put it back to
    wait (no claim, no attempt) and say so; None when the claim should go ahead."""
    job = lifecycle.execute_one_durably(_PEEK, {"id": job_id}, wait_seconds=db_wait)
    if job is None:
        return None  # not claimable: the claim says why
    wait = wait_for(job["kind"], job["payload"] or {})
    if wait is None:
        return None
    row = lifecycle.execute_one_durably(
        lifecycle.WAIT_BEFORE_ATTEMPT,
        {"id": job_id, **wait.params("checked before the attempt")},
        wait_seconds=db_wait,
    )
    if row is None:
        return None  # claimed, cancelled or past its deadline meanwhile: the claim decides
    return f"waiting for {wait.label}"


def wait_during_attempt(mine: dict[str, Any], refusal: CircuitOpenError, *, db_wait: float) -> str:
    """The handler met an open breaker: give the claim back with its attempt, and wait."""
    wait = wait_from(refusal)
    row = lifecycle.execute_one_durably(
        lifecycle.WAIT_DURING_ATTEMPT,
        {**mine, **wait.params("raised during the attempt")},
        wait_seconds=db_wait,
    )
    if row is None:
        return "lost the claim; stopped without writing"
    if row["status"] == "cancelled":
        return "cancelled"
    return f"waiting for {wait.label}"


def wake_waiting() -> int:
    """Due now: the waiting jobs one of whose breakers permits again before their
    retry-after; while a breaker is half-open, at most as many as it has free probe slots.
    Returns how many were woken (dispatch hands them over on the same pass)."""
    woken = 0
    for row in lifecycle.execute(WAITED_FOR, {}):
        slots = breaker_registry.get(row["name"]).free_slots()
        if slots != 0:
            woken += len(lifecycle.execute(WAKE_WAITING, {"breaker": row["name"], "slots": slots}))
    return woken


# Not status changes, so they live here rather than in jobs.lifecycle.
WAITED_FOR = """
SELECT DISTINCT name FROM jobs_job j, unnest(j.waiting_breakers) name
WHERE j.status = 'queued' AND j.waiting_for <> '' AND j.run_after > now()
"""
# Oldest run_after first. With a number of slots (half-open), the jobs already due for this
# breaker that no worker has claimed yet take theirs: more would only be refused and wait
# again, each at the cost of a task and an event.
WAKE_WAITING = """
UPDATE jobs_job SET run_after = now(), updated_at = now()
WHERE id = ANY(ARRAY(
    SELECT id FROM jobs_job
    WHERE status = 'queued' AND waiting_for <> '' AND %(breaker)s = ANY(waiting_breakers)
      AND run_after > now()
    ORDER BY run_after
    LIMIT CASE WHEN %(slots)s::int IS NULL THEN NULL ELSE GREATEST(0, %(slots)s::int - (
        SELECT count(*) FROM jobs_job
        WHERE status = 'queued' AND waiting_for <> '' AND %(breaker)s = ANY(waiting_breakers)
          AND run_after <= now())) END
    FOR UPDATE SKIP LOCKED))
RETURNING id
"""
