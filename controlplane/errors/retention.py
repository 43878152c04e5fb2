"""Retention: delete old error records in small batches, without long locks."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction

BATCH_SIZE = 5_000

# = ANY(ARRAY(...)) runs the limited, locking subquery once; with "IN (subquery)" the
# planner may re-run it per outer row (a nested-loop semi join) and ignore the batch size.
_DELETE_BATCH = """
DELETE FROM errors_errorrecord WHERE id = ANY(ARRAY(
    SELECT id FROM errors_errorrecord
    WHERE created_at < now() - make_interval(days => %s)
    ORDER BY created_at
    LIMIT %s
    FOR UPDATE SKIP LOCKED
))
"""
_DELETE_GROUPS = "DELETE FROM errors_errorgroup WHERE last_seen < now() - make_interval(days => %s)"


def purge_old_errors(
    *,
    days: int | None = None,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete records older than ``days`` (ERROR_RETENTION_DAYS) by the database clock.

    Each batch is its own short transaction; returns how many records were deleted.
    """
    days = settings.ERROR_RETENTION_DAYS if days is None else days
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_DELETE_BATCH, [days, batch_size])
            deleted = cursor.rowcount
        total += deleted
        if progress and deleted:
            progress(total)
        if deleted < batch_size:
            break
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DELETE_GROUPS, [days])
    return total
