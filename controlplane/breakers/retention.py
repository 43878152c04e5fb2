"""Retention of breaker events (the audit of transitions and overrides):
BREAKER_EVENT_RETENTION_DAYS."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from controlplane.lib.retention import delete_in_batches

_DELETE_BATCH = """
DELETE FROM breakers_breakerevent WHERE id = ANY(ARRAY(
    SELECT id FROM breakers_breakerevent
    WHERE created_at < now() - make_interval(days => %(days)s)
    ORDER BY created_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
))
"""


def purge_breaker_events(
    *, days: int | None = None, progress: Callable[[int], None] | None = None
) -> int:
    days = settings.BREAKER_EVENT_RETENTION_DAYS if days is None else days
    return delete_in_batches(_DELETE_BATCH, {"days": days}, progress=progress)
