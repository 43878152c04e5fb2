"""django-q2 entry points for the lookups app (scheduled in apps.py)."""

from __future__ import annotations

from lookups.retention import purge_lookup_reports


def purge_reports() -> int:
    return purge_lookup_reports()
