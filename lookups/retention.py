"""Retention of cache-warm and cache-clear reports and of the stats rows of processes that
stopped reporting (LOOKUP_REPORT_RETENTION_DAYS), and of the figures of slugs no longer
looked up (LOOKUP_SLUG_STATS_RETENTION_DAYS). The audit rows of clears (CacheClear) stay,
like the admin log: ops make one per click."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from controlplane.lib.retention import purge_older_than


def purge_lookup_reports(
    *, days: int | None = None, progress: Callable[[int], None] | None = None
) -> int:
    days = settings.LOOKUP_REPORT_RETENTION_DAYS if days is None else days
    deleted = purge_older_than("lookups_warmreport", "created_at", days, progress=progress)
    deleted += purge_older_than("lookups_clearreport", "created_at", days, progress=progress)
    deleted += purge_older_than("lookups_processstats", "updated_at", days, progress=progress)
    return deleted + purge_older_than(
        "lookups_slugstats",
        "last_seen",
        settings.LOOKUP_SLUG_STATS_RETENTION_DAYS,
        progress=progress,
    )
