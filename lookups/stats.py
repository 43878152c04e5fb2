"""Lookup stats for this process and summed over every process that reported recently."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from lookups.flow import get_lookups, process_name
from lookups.metrics import merge, summarise
from lookups.models import ProcessStats

RECENT = timedelta(minutes=5)


def collect_stats() -> dict[str, Any]:
    lookups = get_lookups()
    lookups.flush_stats()
    mine = lookups.metrics.raw()
    rows = list(
        ProcessStats.objects.filter(updated_at__gte=timezone.now() - RECENT).values(
            "process", "data", "updated_at"
        )
    )
    return {
        "process": {"name": process_name(), "cache_size": len(lookups.cache), **summarise(mine)},
        "aggregate": {"processes": len(rows), **summarise(merge([r["data"] for r in rows]))},
        "processes": [
            {
                "name": r["process"],
                "updated_at": r["updated_at"],
                "cache_size": r["data"].get("cache_size"),
                **summarise(merge([r["data"]])),
            }
            for r in rows
        ],
        "thresholds": {
            "hit_rate_below": 0.5,
            "db_avg_ms_above": 100,
            "success_rate_below": 0.9,
            "fallback_rate_above": 0.2,
        },
    }
