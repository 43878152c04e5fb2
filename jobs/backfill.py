"""Fill micro_uuid for jobs created while a slug could not be resolved (safe to rerun)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection

from jobs.models import Job
from lookups.resolver import LookupResult, get_lookups

BACKFILL_BATCH = """
UPDATE jobs_job j SET micro_uuid = v.uuid, updated_at = now()
FROM (SELECT unnest(%(ids)s::uuid[]) AS id, unnest(%(uuids)s::uuid[]) AS uuid) v
WHERE j.id = v.id AND j.micro_uuid IS NULL
"""


def backfill_micro_uuids(
    *, batch_size: int = 500, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Resolve every job's ``micro_id`` through the lookup flow, one batch query per page.

    Walks the jobs missing a UUID by primary key (keyset pagination, no OFFSET),
    so reruns only see what is still missing. Returns counts.
    """
    missing = Job.objects.filter(micro_uuid__isnull=True).exclude(micro_id="")
    total = missing.count()
    done = filled = 0
    unresolved: dict[str, int] = {}
    last_id = None
    lookups = get_lookups()
    while True:
        page = missing.order_by("id")
        if last_id is not None:
            page = page.filter(id__gt=last_id)
        rows = list(page.values_list("id", "micro_id")[:batch_size])
        if not rows:
            break
        last_id = rows[-1][0]
        results = lookups.lookup_many([slug for _, slug in rows])
        ids, uuids = [], []
        for (job_id, slug), result in zip(rows, results, strict=True):
            if isinstance(result, LookupResult) and result.uuid is not None and not result.stale:
                ids.append(job_id)
                uuids.append(result.uuid)
            else:
                unresolved[slug] = unresolved.get(slug, 0) + 1
        if ids:
            with connection.cursor() as cursor:
                cursor.execute(BACKFILL_BATCH, {"ids": ids, "uuids": uuids})
                filled += cursor.rowcount
        done += len(rows)
        if progress:
            progress(done, total)
    return {
        "examined": done,
        "filled": filled,
        "unresolved": sum(unresolved.values()),
        "unresolved_slugs": dict(sorted(unresolved.items(), key=lambda kv: -kv[1])[:20]),
    }
