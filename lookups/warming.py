"""Warm the lookup cache of every running process, not just the one that was asked.

The asking process warms itself, then NOTIFYs ``controlplane_lookups_warm``; every
other process that listens (``Lookups.listen``) warms its own cache and writes a
WarmReport, which the asker collects for a bounded time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from django.conf import settings
from django.db import connection

from lookups.models import WarmReport
from lookups.stats import process_name

logger = logging.getLogger("controlplane.lookups")
CHANNEL = "controlplane_lookups_warm"


class Warmable(Protocol):
    def warm(self, slugs: list[str] | None = None) -> int: ...


def warm_everywhere(
    lookups: Warmable, *, slugs: list[str] | None = None, wait_seconds: float | None = None
) -> dict[str, Any]:
    """Warm ``lookups`` (this process's) now, ask every other process, collect their reports.

    Processes answer within milliseconds; ``wait_seconds`` bounds how long we collect.
    """
    if wait_seconds is None:
        wait_seconds = settings.LOOKUP_WARM_WAIT_SECONDS
    request_id = uuid.uuid4()
    here = lookups.warm(slugs)
    WarmReport.objects.create(
        request_id=request_id, process=process_name(), warmed=here, slugs=slugs or None
    )
    payload = json.dumps({"request_id": str(request_id), "origin": process_name()})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
    wait_for_answers(lambda: WarmReport.objects.filter(request_id=request_id).count(), wait_seconds)
    reports = list(
        WarmReport.objects.filter(request_id=request_id).values("process", "warmed", "created_at")
    )
    return {"request_id": str(request_id), "reports": reports}


def wait_for_answers(count: Callable[[], int], wait_seconds: float) -> None:
    """Wait while other processes answer a broadcast (``count()``: the reports so far, this
    process's own among them): at most ``wait_seconds``, and once answers came, until none
    has come for 0.3 s (late answers trickle in quickly)."""
    deadline = time.monotonic() + wait_seconds
    seen = 1
    while time.monotonic() < deadline:
        time.sleep(0.1)
        answered = count()
        if answered > seen:
            seen = answered
            deadline = min(deadline, time.monotonic() + 0.3)


def answer(lookups: Warmable, payload: str) -> None:
    """A warm request from another process: warm in a thread of its own, so slow queries
    never hold up the listener (and the invalidations it delivers)."""
    threading.Thread(target=_warm_and_report, args=(lookups, payload), daemon=True).start()


def _warm_and_report(lookups: Warmable, payload: str) -> None:
    try:
        request = json.loads(payload)
        if request.get("origin") == process_name():
            return  # the requesting process warmed itself already
        asked = WarmReport.objects.filter(
            request_id=request["request_id"], process=request["origin"]
        ).values_list("slugs", flat=True)
        warmed = lookups.warm(asked.first() or None)
        WarmReport.objects.create(
            request_id=request["request_id"], process=process_name(), warmed=warmed
        )
    except Exception:
        logger.exception("cache warm request failed in %s", process_name())
    finally:
        connection.close()  # the listener thread keeps no idle ORM connection
