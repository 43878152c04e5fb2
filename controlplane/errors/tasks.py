"""django-q2 entry points for the errors app (scheduled in apps.py)."""

from __future__ import annotations

from controlplane.errors.retention import purge_old_errors
from controlplane.errors.store import replay_spool


def replay_error_spool() -> dict[str, int]:
    result = replay_spool()
    return {
        "inserted": result.inserted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "remaining": result.remaining,
    }


def purge_errors() -> int:
    return purge_old_errors()
