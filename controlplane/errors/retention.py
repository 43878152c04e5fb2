"""Retention of error records: ERROR_RETENTION_DAYS for all, ERROR_ANONYMOUS_RETENTION_DAYS
for those of requests without an authenticated user (scanners, floods, bad tokens)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction

from controlplane.lib.retention import BATCH_SIZE, purge_older_than

_DELETE_GROUPS = (
    "DELETE FROM errors_errorgroup WHERE last_seen < now() - make_interval(days => %(days)s)"
)


def purge_old_errors(
    *,
    days: int | None = None,
    anonymous_days: int | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete records past their retention, by the database clock; how many were deleted."""
    days = settings.ERROR_RETENTION_DAYS if days is None else days
    if anonymous_days is None:
        anonymous_days = settings.ERROR_ANONYMOUS_RETENTION_DAYS
    total = 0
    for age, only_anonymous in ((min(days, anonymous_days), True), (days, False)):
        total += purge_older_than(
            "errors_errorrecord",
            "created_at",
            age,
            only_if="anonymous" if only_anonymous else "",
            batch_size=batch_size,
            progress=(lambda n, done=total: progress(done + n)) if progress else None,
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DELETE_GROUPS, {"days": days})
    return total
