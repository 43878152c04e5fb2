"""What the workers' sweep repairs: deliveries that nothing drives any more, and firing
alerts that nothing could ever end.

A delivery is driven by its job, or (for "worker absent") by a thread of the web process
that noticed it. Either can die with its process, or the job can end without a verdict
(timed out, worker lost, deadline): the delivery would stay pending forever. Each such
delivery is re-driven once by a new job with the attempts it has left; after that (or
with none left) it is marked failed, saying why. So a delivery is attempted at most
ALERT_MAX_ATTEMPTS times and ends within two jobs.

A firing alert ends when its condition is seen to end; some subjects cannot be seen any
more: a provider removed from PROVIDERS, a breaker deleted, a host that stopped
reporting its spool. Those end quietly (no notice).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction

from controlplane.health.alerts import enqueue_delivery
from controlplane.health.models import AlertKind

logger = logging.getLogger("controlplane.alerts")

# A delivery without a job that no attempt touched for this long lost its thread (one
# attempt is ALERT_HTTP_TIMEOUT, the wait between two at most JOB_RETRY_MAX_DELAY).
STUCK_WITHOUT_JOB = timedelta(minutes=5)
STUCK_PER_SWEEP = 200
# A spool backlog is re-confirmed by every sweep and health check of its host.
SPOOL_BACKLOG_UNCONFIRMED = timedelta(minutes=15)

# Open deliveries whose newest job (first or re-drive) is over, or that have none and have
# not been touched for STUCK_WITHOUT_JOB; the partial index alertdelivery_open holds them.
_STUCK = """
SELECT d.id, d.attempts, j.status, j.error_code, j.idempotency_key
FROM health_alertdelivery d
LEFT JOIN LATERAL (
    SELECT status, error_code, idempotency_key FROM jobs_job
    WHERE idempotency_key IN ('alert-delivery-' || d.id, 'alert-delivery-' || d.id || '-redrive')
      AND created_by_id IS NULL
    ORDER BY idempotency_key LIKE '%%-redrive' DESC LIMIT 1
) j ON true
WHERE d.status IN ('pending', 'retrying')
  AND (j.status IN ('succeeded', 'failed', 'cancelled', 'timed_out')
       OR (j.status IS NULL AND d.updated_at < now() - make_interval(secs => %(without_job)s)))
ORDER BY d.updated_at
LIMIT %(limit)s
"""
_FAIL = """
UPDATE health_alertdelivery SET status = 'failed', last_error = %(error)s, updated_at = now()
WHERE id = %(id)s AND status IN ('pending', 'retrying')
"""
_NOTE = """
UPDATE health_alertdelivery SET last_error = %(error)s, updated_at = now()
WHERE id = %(id)s AND status IN ('pending', 'retrying')
"""


def stuck_deliveries() -> dict[int, str]:
    """Re-drive or fail the deliveries nothing drives any more (at most STUCK_PER_SWEEP);
    what became of each: "redriven" or "failed"."""
    done: dict[int, str] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            _STUCK,
            {"without_job": STUCK_WITHOUT_JOB.total_seconds(), "limit": STUCK_PER_SWEEP},
        )
        rows = cursor.fetchall()
    for delivery_id, attempts, job_status, error_code, key in rows:
        why = (
            f"its delivery job ended {job_status}" + (f" ({error_code})" if error_code else "")
            if job_status
            else f"no attempt for {int(STUCK_WITHOUT_JOB.total_seconds() // 60)} minutes "
            "and no job (its process ended)"
        )
        left = settings.ALERT_MAX_ATTEMPTS - attempts
        redriven = key is not None and key.endswith("-redrive")
        with transaction.atomic(), connection.cursor() as cursor:
            if redriven or left <= 0:
                cursor.execute(_FAIL, {"id": delivery_id, "error": f"abandoned: {why}"})
                if cursor.rowcount:
                    done[delivery_id] = "failed"
                continue
            cursor.execute(_NOTE, {"id": delivery_id, "error": f"re-driven by a new job: {why}"})
            if cursor.rowcount:
                enqueue_delivery(delivery_id, redrive=True, max_attempts=left)
                done[delivery_id] = "redriven"
    if done:
        logger.warning("alert deliveries nothing drove any more: %s", done)
    return done


def unreachable_alerts() -> list[int]:
    """End, quietly, the firing alerts whose subject is gone: a provider no longer in
    PROVIDERS, a breaker deleted, a spool backlog its host has not re-confirmed for
    SPOOL_BACKLOG_UNCONFIRMED (the host is gone, or stopped reporting)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE health_alertevent e SET status = 'resolved', resolved_at = now()
            WHERE e.status = 'firing' AND (
                (e.kind = %(provider)s AND NOT e.subject = ANY(%(providers)s))
                OR (e.kind = ANY(%(breaker)s) AND NOT EXISTS (
                    SELECT 1 FROM breakers_breaker b
                    WHERE b.id::text = e.details ->> 'breaker_id'))
                OR (e.kind = %(spool)s AND COALESCE(e.confirmed_at, e.created_at)
                    < now() - make_interval(secs => %(unconfirmed)s)))
            RETURNING e.id
            """,
            {
                "provider": AlertKind.PROVIDER_UNHEALTHY,
                "providers": list(settings.PROVIDERS),
                "breaker": [AlertKind.BREAKER_OPENED, AlertKind.BREAKER_FORCED],
                "spool": AlertKind.SPOOL_BACKLOG,
                "unconfirmed": SPOOL_BACKLOG_UNCONFIRMED.total_seconds(),
            },
        )
        return [row[0] for row in cursor.fetchall()]
