"""Lookup stats: each process writes its figures every few seconds; readers sum the recent ones.

A process's row holds its lifetime totals, its per-minute buckets of the last hour and its
cache's size, capacity and TTL; its per-slug tally goes to ``SlugStats`` in the same flush.
"""

from __future__ import annotations

import os
import socket
import sys
from contextlib import suppress
from datetime import timedelta
from typing import Any

from django.db import OperationalError
from django.db.models.functions import Now
from django.utils import timezone

from lookups import slug_counts
from lookups.cache import LookupCache
from lookups.metrics import KEPT_MINUTES, LookupMetrics, merge, report, thresholds
from lookups.models import ProcessStats
from lookups.slug_counts import SlugCounts

RECENT = timedelta(minutes=5)  # a process that wrote since is running (and is listed)


def process_name() -> str:
    """This process as stats rows and warm reports name it: host:pid:role."""
    role = "worker" if any(a in ("qcluster", "runworker") for a in sys.argv) else "web"
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


def cache_figures(cache: LookupCache) -> dict[str, Any]:
    return {"cache_size": len(cache), "max_size": cache.max_size, "ttl_seconds": cache.ttl}


def flush(metrics: LookupMetrics, cache: LookupCache, counts: SlugCounts) -> None:
    """Write this process's figures (its row is replaced each time) and add its per-slug
    tally to the shared one."""
    with suppress(OperationalError):  # database down: the stats wait for the next flush
        ProcessStats.objects.update_or_create(
            process=process_name(),
            defaults={
                "data": {**metrics.raw(), "minutes": metrics.minutes(), **cache_figures(cache)},
                "updated_at": Now(),
            },
        )
    slug_counts.flush(counts)


def _entry(data: dict[str, Any], now_minute: int) -> dict[str, Any]:
    return {
        "cache_size": data.get("cache_size"),
        "max_size": data.get("max_size"),
        "ttl_seconds": data.get("ttl_seconds"),
        **report(merge([data]), [data.get("minutes", {})], now_minute),
    }


def collect(metrics: LookupMetrics, cache: LookupCache) -> dict[str, Any]:
    """This process, the sum over every running process, and each of them; lifetime figures,
    the 5-minute and 1-hour windows with their alert flags, and the slugs that miss most.

    The running processes (written in the last five minutes) make the lifetime sum and the
    cache figures; the windows also count processes that stopped within the hour."""
    now = timezone.now()
    now_minute = metrics.minute()
    rows = list(
        ProcessStats.objects.filter(updated_at__gte=now - timedelta(minutes=KEPT_MINUTES)).values(
            "process", "data", "updated_at"
        )
    )
    running = [r for r in rows if r["updated_at"] >= now - RECENT]
    ttls = [r["data"]["ttl_seconds"] for r in running if r["data"].get("ttl_seconds") is not None]
    return {
        "process": {
            "name": process_name(),
            **cache_figures(cache),
            **report(metrics.raw(), [metrics.minutes()], now_minute),
        },
        "aggregate": {
            "processes": len(running),
            "cache_size": sum(r["data"].get("cache_size") or 0 for r in running),
            "max_size": sum(r["data"].get("max_size") or 0 for r in running),
            # the longest any process keeps an entry
            "ttl_seconds": max(ttls, default=None),
            **report(
                merge([r["data"] for r in running]),
                [r["data"].get("minutes", {}) for r in rows],
                now_minute,
            ),
        },
        "processes": [
            {"name": r["process"], "updated_at": r["updated_at"], **_entry(r["data"], now_minute)}
            for r in running
        ],
        "thresholds": thresholds(),
        "top_misses": slug_counts.top_misses(),
    }
