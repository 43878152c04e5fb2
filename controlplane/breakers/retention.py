"""Retention of breaker events (the audit of transitions and overrides):
BREAKER_EVENT_RETENTION_DAYS."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from controlplane.lib.retention import purge_older_than


def purge_breaker_events(
    *, days: int | None = None, progress: Callable[[int], None] | None = None
) -> int:
    days = settings.BREAKER_EVENT_RETENTION_DAYS if days is None else days
    return purge_older_than("breakers_breakerevent", "created_at", days, progress=progress)
