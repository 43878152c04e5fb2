"""Deleting old rows from large tables: small batches, each its own short transaction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection, transaction

BATCH_SIZE = 5_000


def delete_in_batches(
    statement: str,
    params: dict[str, Any],
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run ``statement`` (a DELETE of at most ``%(batch)s`` rows) until a batch comes back
    short; the rows deleted in all.

    Write it as ``DELETE FROM t WHERE id = ANY(ARRAY(SELECT id ... LIMIT %(batch)s FOR UPDATE
    SKIP LOCKED))``: ``= ANY(ARRAY(...))`` runs the limited subquery once, where the planner
    may re-run an ``IN (subquery)`` per outer row and ignore the limit.
    """
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, {**params, "batch": batch_size})
            deleted = cursor.rowcount
        total += deleted
        if progress and deleted:
            progress(total)
        if deleted < batch_size:
            return total
