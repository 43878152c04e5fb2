"""Retention of cache-warm reports and of the stats rows of processes that stopped
reporting: LOOKUP_REPORT_RETENTION_DAYS."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from controlplane.lib.retention import delete_in_batches

_DELETE_REPORTS = """
DELETE FROM lookups_warmreport WHERE id = ANY(ARRAY(
    SELECT id FROM lookups_warmreport
    WHERE created_at < now() - make_interval(days => %(days)s)
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED
))
"""
_DELETE_STATS = """
DELETE FROM lookups_processstats WHERE id = ANY(ARRAY(
    SELECT id FROM lookups_processstats
    WHERE updated_at < now() - make_interval(days => %(days)s)
    LIMIT %(batch)s FOR UPDATE SKIP LOCKED
))
"""


def purge_lookup_reports(
    *, days: int | None = None, progress: Callable[[int], None] | None = None
) -> int:
    days = settings.LOOKUP_REPORT_RETENTION_DAYS if days is None else days
    deleted = delete_in_batches(_DELETE_REPORTS, {"days": days}, progress=progress)
    return deleted + delete_in_batches(_DELETE_STATS, {"days": days}, progress=progress)
