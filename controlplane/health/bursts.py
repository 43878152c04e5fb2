"""Bursts, evaluated by the workers' sweep on the database clock: many records of one
error group, or many failed jobs of one kind, within ALERT_BURST_WINDOW_SECONDS. Each fires
once per episode and ends quietly once its subject is under the threshold again."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection

from controlplane.health.alert_sources import QUIET_SERVICE_PREFIX
from controlplane.health.alerts import Alert, raise_alert, resolve
from controlplane.health.delivery import DELIVER_KIND
from controlplane.health.models import AlertEvent, AlertKind

# Client reports are not this service's errors (any client could page ops with them).
# {only}: empty, or the firing subjects re-checked before their episodes end.
_ERROR_BURSTS = """
SELECT fingerprint, min(code), min(service), count(*) FROM errors_errorrecord
WHERE created_at >= now() - make_interval(secs => %(window)s)
  AND NOT reported AND NOT starts_with(service, %(quiet)s) {only}
GROUP BY fingerprint HAVING count(*) >= %(count)s
ORDER BY count(*) DESC {limit}
"""
_JOB_FAILURE_BURSTS = """
SELECT kind, count(*) FROM jobs_job
WHERE finished_at >= now() - make_interval(secs => %(window)s)
  AND status IN ('failed', 'timed_out') AND kind <> %(quiet)s {only}
GROUP BY kind HAVING count(*) >= %(count)s
ORDER BY count(*) DESC {limit}
"""
BURSTS_ANNOUNCED = 100  # per sweep and kind of burst, the biggest first


def _bursts(sql: str, column: str, params: dict[str, Any], kind: str) -> list[tuple[Any, ...]]:
    """The bursts over the threshold now (at most BURSTS_ANNOUNCED); and the firing ones
    that are under it again end, quietly. Those are re-counted on their own, not inferred
    from the capped list: the 101st burst still fires, and does not flap."""
    with connection.cursor() as cursor:
        cursor.execute(sql.format(only="", limit=f"LIMIT {BURSTS_ANNOUNCED}"), params)
        rows = cursor.fetchall()
        firing = set(
            AlertEvent.objects.firing().filter(kind=kind).values_list("subject", flat=True)
        )
        firing -= {row[0] for row in rows}
        if firing:
            cursor.execute(
                sql.format(only=f"AND {column} = ANY(%(only)s)", limit=""),
                {**params, "only": list(firing)},
            )
            firing -= {row[0] for row in cursor.fetchall()}
    for subject in firing:
        resolve(subject, [kind])
    return rows


def error_bursts() -> set[str]:
    window, count = settings.ALERT_BURST_WINDOW_SECONDS, settings.ALERT_ERROR_BURST_COUNT
    params = {"window": window, "count": count, "quiet": QUIET_SERVICE_PREFIX}
    rows = _bursts(_ERROR_BURSTS, "fingerprint", params, AlertKind.ERROR_BURST)
    for fingerprint, code, service, seen in rows:
        raise_alert(
            Alert(
                AlertKind.ERROR_BURST,
                fingerprint,
                f"{seen} {code} errors in {window} s" + (f" in {service}" if service else ""),
                {"fingerprint": fingerprint, "code": code, "service": service, "count": seen},
            )
        )
    return {row[0] for row in rows}


def job_failure_bursts() -> set[str]:
    window, count = settings.ALERT_BURST_WINDOW_SECONDS, settings.ALERT_JOB_FAILURE_BURST_COUNT
    params = {"window": window, "count": count, "quiet": DELIVER_KIND}
    rows = _bursts(_JOB_FAILURE_BURSTS, "kind", params, AlertKind.JOB_FAILURE_BURST)
    for kind, failed in rows:
        raise_alert(
            Alert(
                AlertKind.JOB_FAILURE_BURST,
                kind,
                f"{failed} {kind} jobs failed or timed out in {window} s",
                {"job_kind": kind, "count": failed},
            )
        )
    return {row[0] for row in rows}
