"""Warm the lookup cache of every running process, not just the one that was asked."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import connection

from lookups.flow import WARM_CHANNEL, get_lookups, process_name
from lookups.models import WarmReport


def warm_everywhere(
    *, slugs: list[str] | None = None, wait_seconds: float | None = None
) -> dict[str, Any]:
    """Warm this process now, broadcast to the others (NOTIFY), and collect their reports.

    Processes answer within milliseconds; ``wait_seconds`` bounds how long we collect.
    """
    if wait_seconds is None:
        wait_seconds = settings.LOOKUP_WARM_WAIT_SECONDS
    request_id = uuid.uuid4()
    here = get_lookups().warm(slugs)
    WarmReport.objects.create(request_id=request_id, process=process_name(), warmed=here)
    payload = json.dumps(
        {"request_id": str(request_id), "slugs": slugs or [], "origin": process_name()}
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [WARM_CHANNEL, payload])
    deadline = time.monotonic() + wait_seconds
    seen = 1
    while time.monotonic() < deadline:
        time.sleep(0.1)
        count = WarmReport.objects.filter(request_id=request_id).count()
        if count > seen:
            seen = count
            deadline = min(deadline, time.monotonic() + 0.3)  # late answers trickle in quickly
    reports = list(
        WarmReport.objects.filter(request_id=request_id).values("process", "warmed", "created_at")
    )
    return {"request_id": str(request_id), "reports": reports}
