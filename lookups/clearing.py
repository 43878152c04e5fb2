"""Clear the lookup cache of every running process, for ops, audited.

The audit (a CacheClear row naming who, how and when, and an admin LogEntry) and the NOTIFY
on ``controlplane_lookups_clear`` commit in one transaction: a clear that was not recorded
reaches no process, and one that was reaches every process that listens, web and worker
alike (``Lookups.listen``). Each drops its entries at once, in its listener thread, and
writes a ClearReport, which the asking process collects for a bounded time (as warming
does), so the answer says which processes cleared.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Protocol

from django.conf import settings
from django.contrib.admin.models import ADDITION, LogEntry
from django.db import connection, transaction

from lookups.models import CacheClear, ClearReport
from lookups.stats import process_name
from lookups.warming import wait_for_answers

logger = logging.getLogger("controlplane.lookups")
CHANNEL = "controlplane_lookups_clear"


class Clearable(Protocol):
    def clear(self) -> int: ...


def clear_everywhere(
    lookups: Clearable, *, actor: Any, via: str, wait_seconds: float | None = None
) -> dict[str, Any]:
    """Record the clear and broadcast it (one transaction), clear ``lookups`` (this
    process's), then collect every process's report for up to LOOKUP_WARM_WAIT_SECONDS."""
    if wait_seconds is None:
        wait_seconds = settings.LOOKUP_WARM_WAIT_SECONDS
    with transaction.atomic():
        clear = CacheClear.objects.create(
            requested_by=actor, requested_by_name=actor.get_username(), via=via
        )
        LogEntry.objects.log_actions(
            user_id=actor.pk,
            queryset=[clear],
            action_flag=ADDITION,
            change_message=f"Cleared the lookup cache in every process (via {via}).",
            single_object=True,
        )
        payload = json.dumps({"request_id": str(clear.request_id), "origin": process_name()})
        with connection.cursor() as cursor:  # delivered when the audit commits
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
    ClearReport.objects.create(clear=clear, process=process_name(), cleared=lookups.clear())
    wait_for_answers(clear.reports.count, wait_seconds)
    return {
        "request_id": str(clear.request_id),
        "requested_by": clear.requested_by_name,
        "via": via,
        "reports": list(clear.reports.values("process", "cleared", "created_at")),
    }


def answer(lookups: Clearable, payload: str) -> None:
    """Another process asked: clear now (cheap, in the listener thread), report in a thread
    of its own (a slow database must not hold up the listener)."""
    try:
        request = json.loads(payload)
        request_id = request["request_id"]
        if request.get("origin") == process_name():
            return  # the asking process cleared itself already
    except (ValueError, TypeError, KeyError):
        logger.warning("ignored a malformed cache clear request: %.200s", payload)
        return
    cleared = lookups.clear()
    threading.Thread(target=_report, args=(request_id, cleared), daemon=True).start()


def _report(request_id: str, cleared: int) -> None:
    try:
        clear = CacheClear.objects.filter(request_id=request_id).first()
        if clear is not None:
            ClearReport.objects.create(clear=clear, process=process_name(), cleared=cleared)
    except Exception:
        logger.exception("reporting a cache clear failed in %s", process_name())
    finally:
        connection.close()  # this thread keeps no idle ORM connection
