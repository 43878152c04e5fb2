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


def purge_older_than(
    table: str,
    column: str,
    days: int,
    *,
    only_if: str = "",
    batch_size: int = BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete the rows of ``table`` whose timestamp ``column`` is more than ``days`` old by the
    database clock, oldest first, in batches; ``only_if``: a boolean column the rows must have
    true as well. The rows deleted in all."""
    table, column = connection.ops.quote_name(table), connection.ops.quote_name(column)
    also = f"AND {connection.ops.quote_name(only_if)}" if only_if else ""
    statement = f"""
DELETE FROM {table} WHERE id = ANY(ARRAY(
    SELECT id FROM {table}
    WHERE {column} < now() - make_interval(days => %(days)s) {also}
    ORDER BY {column}
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
))
"""  # noqa: S608 -- identifiers quoted, values are parameters
    return delete_in_batches(statement, {"days": days}, batch_size=batch_size, progress=progress)
