"""Alert conditions evaluated periodically, on the database clock.

Workers run :func:`maybe_sweep` after each job maintenance pass (``maintenance_pass``),
at most once per ALERT_SWEEP_SECONDS per process: error and job-failure bursts, this
machine's spool backlog, the catch-up of breaker changes and new error groups whose
announcement was lost, digests of rate-limited deliveries, the end of "worker absent",
and the repairs of ``alert_repairs`` (deliveries nothing drives, alerts nothing ends).
Web processes run :func:`after_health_check` from the health endpoint and the
dashboard: "worker absent" (which no worker can report, so it is delivered directly by
the web process) and their own machine's spool backlog. Every condition fires once per
episode (one firing event per kind and subject, decided by a unique index), however many
processes evaluate it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef
from django.db.models.functions import Now

from controlplane.breakers.models import BreakerEvent
from controlplane.errors import spool
from controlplane.errors.models import ErrorGroup, ErrorRecord
from controlplane.health.alert_repairs import stuck_deliveries, unreachable_alerts
from controlplane.health.alert_sources import (
    breaker_alert,
    group_alert,
    group_key,
)
from controlplane.health.alerts import Alert, raise_alert, resolve
from controlplane.health.bursts import error_bursts, job_failure_bursts
from controlplane.health.delivery import RATE_WINDOW
from controlplane.health.models import (
    AlertChannel,
    AlertDelivery,
    AlertEvent,
    AlertKind,
    AlertStatus,
    DeliveryStatus,
)

logger = logging.getLogger("controlplane.alerts")

# How far back the sweep looks for announcements that were lost.
CATCH_UP = timedelta(minutes=10)
DIGEST_MAX_ITEMS = 200
WORKERS_SUBJECT = "workers"
PRUNE_EVERY_SECONDS = 3600
# When each last ran (time.monotonic(); None: never, in this process).
_last: dict[str, Any] = {"sweep": None, "web": None, "prune": None, "bootstrapped": None}


def _due(what: str, every: float) -> bool:
    """Is ``what`` due (and now marked as run)?"""
    now = time.monotonic()
    if _last[what] is not None and now - _last[what] < every:
        return False
    _last[what] = now
    return True


def on_maintenance_pass(sender: Any, **kwargs: Any) -> None:
    """maintenance_pass receiver (workers)."""
    maybe_sweep()


def maybe_sweep() -> bool:
    if not _due("sweep", settings.ALERT_SWEEP_SECONDS):
        return False
    sweep()
    return True


def sweep() -> None:
    """Every worker-side condition; one that fails is logged and the others still run."""
    steps: list[Callable[[], Any]] = [
        bootstrap_once,
        catch_up_breakers,
        catch_up_groups,
        error_bursts,
        job_failure_bursts,
        workers_present,
        spool_backlog,
        unreachable_alerts,
        stuck_deliveries,
        digests,
        prune,
    ]
    for step in steps:
        try:
            step()
        except DatabaseError:
            logger.exception("alert condition %s failed", step.__name__)
            connection.close()


# --- channels from the environment ------------------------------------------------------


def env_channel_name(url: str) -> str:
    return f"env webhook {hashlib.sha256(url.encode()).hexdigest()[:12]}"


def bootstrap_env_channels(*, disable_unlisted: bool = True) -> list[AlertChannel]:
    """One signed webhook channel per ALERT_WEBHOOK_URLS entry (secret ALERT_WEBHOOK_SECRET);
    with ``disable_unlisted``, env channels no longer listed are disabled, not deleted (their
    deliveries stay)."""
    channels = []
    for url in settings.ALERT_WEBHOOK_URLS:
        channel, _ = AlertChannel.objects.update_or_create(
            name=env_channel_name(url),
            defaults={
                "kind": AlertChannel.WEBHOOK,
                "target": url,
                "secret": settings.ALERT_WEBHOOK_SECRET or "",
                "enabled": True,
                "source": "env",
            },
        )
        channels.append(channel)
    if disable_unlisted:
        AlertChannel.objects.filter(source="env").exclude(pk__in=[c.pk for c in channels]).update(
            enabled=False
        )
    return channels


def bootstrap_once() -> None:
    if _last["bootstrapped"] != os.getpid():
        bootstrap_env_channels()
        _last["bootstrapped"] = os.getpid()


def on_post_migrate(using: str = "default", **kwargs: Any) -> None:
    """Create or enable the listed channels only: ``migrate`` run from a shell without
    ALERT_WEBHOOK_URLS must not turn notifications off. Disabling the ones no longer
    listed is the workers' (``bootstrap_once``), whose environment is the service's."""
    if using == "default":
        bootstrap_env_channels(disable_unlisted=False)


# --- lost announcements ------------------------------------------------------------------


def catch_up_breakers() -> int:
    """Recent breaker changes of this service's breakers that have no alert yet, oldest
    first (half-open is not news). Skipped as handled: a change older than one already
    announced for its breaker (the insert's generation guard would refuse it anyway), and
    a reopen while that breaker's "opened" still fires (the episode is announced; the
    one-firing index suppressed it, so it never gets a key of its own)."""
    changes = list(
        BreakerEvent.objects.filter(created_at__gte=Now() - CATCH_UP, breaker__owner=None)
        .exclude(kind="transition", to_state="half_open")
        .select_related("breaker")
        .order_by("created_at", "id")[:500]
    )
    keys = {f"breaker:{c.breaker_id}:g{c.generation}" for c in changes}
    known = set(AlertEvent.objects.filter(dedup_key__in=keys).values_list("dedup_key", flat=True))
    pending = [c for c in changes if f"breaker:{c.breaker_id}:g{c.generation}" not in known]
    announced = _announced_generations({c.breaker.name for c in pending})
    made = 0
    for change in pending:
        latest, firing_opened = announced.get((change.breaker.name, change.breaker_id), (-1, False))
        reopen = change.kind == "transition" and change.to_state == "open" and firing_opened
        if change.generation < latest or reopen:
            continue
        breaker_alert(
            name=change.breaker.name,
            from_state=change.from_state,
            to_state=change.to_state,
            generation=change.generation,
            kind=change.kind,
            action=(change.details or {}).get("action", ""),
            actor=change.actor,
            reason=change.reason if change.kind == "override" else "",
        )
        made += 1
    return made


def _announced_generations(names: set[str]) -> dict[tuple[str, int], tuple[int, bool]]:
    """Per (breaker name, breaker id): the newest generation announced, and whether its
    "opened" fires now (one query on the (subject, kind) index)."""
    if not names:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT subject, (details ->> 'breaker_id')::bigint,
                   max((details ->> 'generation')::bigint),
                   bool_or(kind = 'breaker.opened' AND status = 'firing')
            FROM health_alertevent
            WHERE subject = ANY(%(names)s) AND kind LIKE 'breaker.%%'
              AND details ? 'breaker_id' AND details ? 'generation'
            GROUP BY 1, 2
            """,
            {"names": list(names)},
        )
        return {(name, pk): (latest, firing) for name, pk, latest, firing in cursor.fetchall()}


def catch_up_groups() -> int:
    """Recent new groups of this service's own errors (a group made by a client's report
    is not announced) whose announcement was lost."""
    own = ErrorRecord.objects.filter(fingerprint=OuterRef("fingerprint"), reported=False)
    groups = list(
        ErrorGroup.objects.filter(
            last_seen__gte=Now() - CATCH_UP, first_seen__gte=Now() - CATCH_UP
        ).filter(Exists(own))[:500]
    )
    keys = {group_key(g.pk): g for g in groups}
    known = set(AlertEvent.objects.filter(dedup_key__in=keys).values_list("dedup_key", flat=True))
    for key, group in keys.items():
        if key not in known:
            group_alert(
                group_id=group.pk,
                fingerprint=group.fingerprint,
                code=group.code,
                service=group.service,
                first_seen=group.first_seen,
                support_id=group.latest_support_id,
            )
    return len(keys) - len(known)


# --- workers and the spool ---------------------------------------------------------------


# When the web side first saw no worker (database clock, epoch seconds), in the shared
# "cluster" cache (a database table): every web process measures the same absence.
ABSENT_SINCE_KEY = "alerts:workers-absent-since"


def workers_present() -> None:
    """Run by a worker: workers are back, the absence ends."""
    caches["cluster"].delete(ABSENT_SINCE_KEY)
    resolve(WORKERS_SUBJECT, [AlertKind.WORKER_ABSENT])


def _absent_for() -> float:
    """Seconds since the web side first saw no worker (0 the first time)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT extract(epoch FROM now())::float8")
        now = cursor.fetchone()[0]
    cache = caches["cluster"]
    cache.add(ABSENT_SINCE_KEY, now, timeout=None)  # the first to see it; the others keep it
    since = cache.get(ABSENT_SINCE_KEY, now)
    return max(0.0, now - float(since))


def spool_backlog() -> None:
    """This machine's error spool, past ALERT_SPOOL_BACKLOG_BYTES (records waiting for the
    database: the drain is behind or failing)."""
    host = socket.gethostname()
    waiting = spool.backlog().bytes
    if waiting >= settings.ALERT_SPOOL_BACKLOG_BYTES:
        raise_alert(
            Alert(
                AlertKind.SPOOL_BACKLOG,
                host,
                f"{waiting:,} bytes of error records waiting in the spool on {host}",
                {"host": host, "backlog_bytes": waiting},
            )
        )
        # Still true: a backlog its host stops confirming ends (alert_repairs).
        AlertEvent.objects.firing().filter(kind=AlertKind.SPOOL_BACKLOG, subject=host).update(
            confirmed_at=Now()
        )
    else:
        resolve(host, [AlertKind.SPOOL_BACKLOG])


def after_health_check(report: dict[str, Any]) -> None:
    """Web side, from the health endpoint and the dashboard (at most once per
    ALERT_SWEEP_SECONDS per process): no worker cluster is running -> "worker absent",
    delivered directly from here since no worker would run a delivery job; and this
    machine's spool backlog. Never raises: the health answer does not depend on it.
    "Worker absent" fires once no worker has been seen for ALERT_WORKER_ABSENT_SECONDS."""
    checks = report.get("checks", {})
    if checks.get("database", {}).get("status") != "healthy":
        return  # nothing can be recorded; the health answer says why
    if not _due("web", settings.ALERT_SWEEP_SECONDS):
        return
    try:
        clusters = checks.get("workers", {}).get("clusters")
        if clusters:
            caches["cluster"].delete(ABSENT_SINCE_KEY)
        # A deploy restarts the workers: only an absence that lasts is news.
        if clusters == 0 and _absent_for() >= settings.ALERT_WORKER_ABSENT_SECONDS:
            raise_alert(
                Alert(
                    AlertKind.WORKER_ABSENT,
                    WORKERS_SUBJECT,
                    "No worker is running: jobs (and alert deliveries) wait",
                    {"queue_depth": checks["workers"].get("queue_depth")},
                ),
                direct=True,
            )
        spool_backlog()
    except DatabaseError:
        logger.exception("alert conditions of the health check failed")


# --- digests of rate-limited deliveries --------------------------------------------------


def digests() -> int:
    """Each channel holding rate-limited deliveries gets one digest of them as soon as its
    hourly limit has room again; the held deliveries are marked as folded into it."""
    made = 0
    held_channels = (
        AlertDelivery.objects.filter(status=DeliveryStatus.RATE_LIMITED)
        .values_list("channel", flat=True)
        .distinct()
    )
    for channel in AlertChannel.objects.filter(pk__in=list(held_channels), enabled=True):
        used = AlertDelivery.objects.filter(
            channel=channel, started_at__gte=Now() - RATE_WINDOW
        ).count()
        if used >= channel.max_per_hour:
            continue
        with transaction.atomic():
            held = list(
                AlertDelivery.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(channel=channel, status=DeliveryStatus.RATE_LIMITED)
                .select_related("event")
                .order_by("id")[:DIGEST_MAX_ITEMS]
            )
            if not held:
                continue
            items = [
                {"kind": d.event.kind, "subject": d.event.subject, "summary": d.event.summary,
                 "created_at": d.event.created_at.isoformat()}
                for d in held
            ]  # fmt: skip
            raised = raise_alert(
                Alert(
                    AlertKind.DIGEST,
                    channel.name,
                    f"{len(held)} notifications held back by the rate limit of {channel.name}",
                    {"channel": channel.name, "items": items},
                    f"digest:{channel.pk}:{held[0].pk}",
                ),
                channels=[channel.pk],
            )
            if raised.event_id is not None:
                AlertDelivery.objects.filter(pk__in=[d.pk for d in held]).update(
                    status=DeliveryStatus.DIGESTED, digest_id=raised.event_id, updated_at=Now()
                )
                made += 1
    return made


def prune() -> int:
    """Alert events that ended (and their deliveries) are kept as long as error records
    (ERROR_RETENTION_DAYS); firing ones are kept while they fire. At most hourly."""
    if not _due("prune", PRUNE_EVERY_SECONDS):
        return 0
    old = AlertEvent.objects.exclude(status=AlertStatus.FIRING).filter(
        created_at__lt=Now() - timedelta(days=settings.ERROR_RETENTION_DAYS)
    )
    batch = list(old.values_list("pk", flat=True)[:5000])  # a bounded delete per pass
    deleted, _ = AlertEvent.objects.filter(pk__in=batch).delete()
    return deleted
