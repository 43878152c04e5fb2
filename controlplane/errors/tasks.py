"""django-q2 entry points for the errors app (scheduled in apps.py)."""

from __future__ import annotations

from controlplane.errors.retention import purge_old_errors
from controlplane.errors.store import replay_spool


def replay_error_spool() -> dict[str, int]:
    """The safety net behind the background drain; a replay killed at Q_TIMEOUT resumes
    where it stopped."""
    result = replay_spool()
    return {
        "inserted": result.inserted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
        "corrupt": result.corrupt,
        "remaining": result.remaining,
        "busy": int(result.busy),
    }


def purge_errors() -> int:
    return purge_old_errors()
