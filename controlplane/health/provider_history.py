"""The dashboard's 24 h provider health: per configured provider, a strip of 15-minute
cells, each coloured by the worst probe result in it (ProviderCheck rows)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

WINDOW = timedelta(hours=24)
BUCKET = timedelta(minutes=15)
CELLS = int(WINDOW / BUCKET)
STRIP_WIDTH, STRIP_HEIGHT = 720, 14
NO_CHECKS = "no checks"
COLOURS = {"healthy": "#81c784", "degraded": "#ef6c00", "unhealthy": "#c62828", NO_CHECKS: "#eee"}
_WORST = ("healthy", "degraded", "unhealthy")

# Counted in the database, per provider and bucket, through the (provider, -checked_at)
# index: at most a day of probes per configured provider is read, never shipped.
BUCKETS = """
SELECT provider, date_bin(%(bucket)s, checked_at, %(start)s) AS bucket,
       max(CASE status WHEN 'unhealthy' THEN 2 WHEN 'degraded' THEN 1 ELSE 0 END) AS worst,
       count(*) FILTER (WHERE status <> 'healthy') AS bad, count(*) AS checks
FROM health_providercheck
WHERE provider = ANY(%(providers)s) AND checked_at >= %(start)s
GROUP BY 1, 2
"""


def provider_strips(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """One strip per configured provider (sorted by name), CELLS cells oldest first."""
    providers = sorted(settings.PROVIDERS)
    if not providers:
        return []
    with connection.cursor() as cursor:
        if now is None:
            cursor.execute("SELECT now()")  # the clock the checks were stamped with
            now = cursor.fetchone()[0]
        start = now - WINDOW
        cursor.execute(BUCKETS, {"bucket": BUCKET, "start": start, "providers": providers})
        found: dict[tuple[str, int], tuple[int, int, int]] = {}
        for provider, bucket, worst, bad, checks in cursor.fetchall():
            # A check stamped at ``now`` itself falls in the last cell, not past the strip.
            key = (provider, min(int((bucket - start) / BUCKET), CELLS - 1))
            was = found.get(key, (0, 0, 0))
            found[key] = (max(was[0], worst), was[1] + bad, was[2] + checks)
    width = STRIP_WIDTH / CELLS
    strips = []
    for provider in providers:
        cells = []
        for i in range(CELLS):
            begins = start + i * BUCKET
            worst, bad, checks = found.get((provider, i), (0, 0, 0))
            status = _WORST[worst] if checks else NO_CHECKS
            local = timezone.localtime(begins)
            cells.append(
                {
                    "status": status,
                    "x": round(i * width, 2),
                    "width": round(width - 0.5, 2),
                    "colour": COLOURS[status],
                    "title": f"{local:%H:%M}: {status}"
                    + (f" ({bad} of {checks} checks not healthy)" if checks else ""),
                }
            )
        strips.append({"provider": provider, "cells": cells})
    return strips
