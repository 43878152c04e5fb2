"""Alert events: raised once, fanned out to the channels that want them, delivered by jobs.

The database decides every "once": an event's ``dedup_key`` is unique, a firing condition
has at most one firing event per (kind, subject) (a partial unique index), and a delivery
is unique per (event, channel). Whoever inserts the delivery row enqueues its job (with
the delivery as idempotency key), so however many web and worker processes see the same
trigger, each channel gets the event once. Retries with backoff are the job system's
(``notifications.deliver``, ``controlplane.health.delivery``).

"Worker absent" cannot wait for a worker: that one is delivered directly by the web
process that noticed it (``deliver_directly``), with the short HTTP timeout.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from controlplane.health.delivery import DELIVER_KIND, deliver_with_retries
from controlplane.health.models import FIRING_KINDS, AlertChannel, AlertEvent, AlertStatus

logger = logging.getLogger("controlplane.alerts")

DELIVERY_TIMEOUT_SECONDS = 60  # one attempt: the HTTP timeout is far shorter

# INSERT ... SELECT so that two guards run in the same statement as the insert:
# - ON CONFLICT DO NOTHING (no target): a repeated dedup key, or a second firing event of
#   the same kind and subject, inserts nothing;
# - for breakers, an event about an older generation than one already announced (a slow
#   process announcing "opened" after another announced "closed") inserts nothing.
_INSERT_EVENT = """
INSERT INTO health_alertevent
    (kind, subject, dedup_key, status, summary, details, created_at, resolved_at)
SELECT %(kind)s, %(subject)s,
       COALESCE(%(dedup_key)s,
                %(kind)s || ':' || %(subject)s || ':' || extract(epoch FROM now())::text),
       %(status)s, %(summary)s, %(details)s::jsonb, now(), NULL
WHERE %(generation)s::bigint IS NULL OR NOT EXISTS (
    SELECT 1 FROM health_alertevent e
    WHERE e.subject = %(subject)s AND e.kind LIKE 'breaker.%%'
      AND e.details ->> 'breaker_id' = %(breaker_id)s
      AND (e.details ->> 'generation')::bigint > %(generation)s::bigint)
ON CONFLICT DO NOTHING
RETURNING id
"""
# With a generation: only events of that generation or older end (an event about a newer
# one -- a breaker that reopened since -- is not this announcement's to end).
_RESOLVE = """
UPDATE health_alertevent SET status = 'resolved', resolved_at = now()
WHERE status = 'firing' AND subject = %(subject)s AND kind = ANY(%(kinds)s)
  AND (%(generation)s::bigint IS NULL OR NOT details ? 'generation'
       OR (details ->> 'generation')::bigint <= %(generation)s::bigint)
RETURNING id
"""
_FAN_OUT = """
INSERT INTO health_alertdelivery
    (event_id, channel_id, status, attempts, response_codes, last_error, created_at, updated_at)
SELECT %(event)s, c, 'pending', 0, '{}', '', now(), now() FROM unnest(%(channels)s::bigint[]) c
ON CONFLICT DO NOTHING
RETURNING id
"""


@dataclass(frozen=True)
class Alert:
    """What to tell people. ``dedup_key`` None: one per episode (kind, subject, the moment
    the database inserted it), for firing conditions."""

    kind: str
    subject: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    dedup_key: str | None = None


@dataclass
class Raised:
    event_id: int | None = None
    resolved: list[int] = field(default_factory=list)
    deliveries: list[int] = field(default_factory=list)


def raise_alert(
    alert: Alert,
    *,
    resolves: Iterable[str] = (),
    only_if_resolved: bool = False,
    generation: int | None = None,
    direct: bool = False,
    channels: list[int] | None = None,
) -> Raised:
    """Record ``alert`` (unless its dedup key or a firing twin exists) and queue one delivery
    per channel that wants it, in one transaction.

    ``resolves``: firing kinds of the same subject that end now (resolved first, so a new
    episode of the same kind may fire; undone if the alert itself is refused).
    ``only_if_resolved``: record the alert only if that ended something (a "recovered"
    notice is news only after an "unhealthy").
    ``generation``: a breaker generation; older than one already announced: nothing.
    ``direct``: deliver from this process (in a thread) instead of through jobs.
    ``channels``: only these (a digest goes to the channel it sums up)."""
    raised = Raised()
    with transaction.atomic():
        resolves = list(resolves)
        if resolves:
            raised.resolved = resolve(alert.subject, resolves, generation=generation)
        if only_if_resolved and not raised.resolved:
            return raised
        status = AlertStatus.FIRING if alert.kind in FIRING_KINDS else AlertStatus.NOTICE
        with connection.cursor() as cursor:
            cursor.execute(
                _INSERT_EVENT,
                {
                    "kind": alert.kind,
                    "subject": alert.subject[:200],
                    "dedup_key": alert.dedup_key[:300] if alert.dedup_key else None,
                    "status": status,
                    "summary": alert.summary,
                    "details": json.dumps(alert.details, default=str),
                    "generation": generation,
                    "breaker_id": str(alert.details.get("breaker_id", "")),
                },
            )
            row = cursor.fetchone()
        if row is None:
            # Announced already, or superseded (a late process, the sweep's replay): what it
            # resolved stays firing -- a newer episode is not ended by an older change.
            transaction.set_rollback(True)
            raised.resolved = []
            return raised
        raised.event_id = row[0]
        if channels is None:
            enabled = AlertChannel.objects.filter(enabled=True)
            channels = [c.pk for c in enabled if c.wants(alert.kind)]
        raised.deliveries = fan_out(raised.event_id, channels, direct=direct)
    logger.info("alert %s %s: %s", alert.kind, alert.subject, alert.summary)
    return raised


def resolve(subject: str, kinds: Iterable[str], *, generation: int | None = None) -> list[int]:
    """End the firing events of these kinds for ``subject`` (with ``generation``: only those
    about that generation or an older one); the ids this call ended."""
    params = {"subject": subject[:200], "kinds": list(kinds), "generation": generation}
    with connection.cursor() as cursor:
        cursor.execute(_RESOLVE, params)
        return [row[0] for row in cursor.fetchall()]


def fan_out(event_id: int, channels: list[int], *, direct: bool = False) -> list[int]:
    """One delivery row per channel (inside the caller's transaction), and its job once
    committed; deliveries that already existed are left to their job."""
    if not channels:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_FAN_OUT, {"event": event_id, "channels": channels})
        deliveries = [row[0] for row in cursor.fetchall()]
    if direct:
        transaction.on_commit(lambda: deliver_directly(deliveries))
    else:
        for delivery_id in deliveries:
            enqueue_delivery(delivery_id)
    return deliveries


def enqueue_delivery(
    delivery_id: int, *, redrive: bool = False, max_attempts: int | None = None
) -> None:
    """The job that delivers (and retries) one delivery; the idempotency key makes a second
    enqueue of the same delivery return the first job. ``redrive``: the one later job of a
    delivery whose first driver ended without a verdict (``alert_repairs``)."""
    from jobs.actions import create_job

    create_job(
        kind=DELIVER_KIND,
        payload={"delivery_id": delivery_id},
        idempotency_key=f"alert-delivery-{delivery_id}" + ("-redrive" if redrive else ""),
        max_attempts=max_attempts or settings.ALERT_MAX_ATTEMPTS,
        timeout_seconds=DELIVERY_TIMEOUT_SECONDS,
    )


def deliver_directly(deliveries: list[int]) -> None:
    """Deliver without a worker, in a background thread of this process: every attempt it
    has (ALERT_MAX_ATTEMPTS, with backoff), each bounded by ALERT_HTTP_TIMEOUT."""
    if deliveries:
        threading.Thread(
            target=deliver_with_retries, args=(deliveries,), name="alert-direct", daemon=True
        ).start()


FIRING_SHOWN = 50


def firing_alerts() -> list[AlertEvent]:
    """The alerts firing now, newest first (the dashboard's panel): at most FIRING_SHOWN."""
    return list(AlertEvent.objects.firing().order_by("-created_at", "-id")[:FIRING_SHOWN])
