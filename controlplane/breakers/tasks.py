"""django-q2 entry points for the breakers app (scheduled in apps.py)."""

from __future__ import annotations

from controlplane.breakers.retention import purge_breaker_events


def purge_events() -> int:
    return purge_breaker_events()
