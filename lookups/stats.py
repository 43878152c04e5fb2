"""Lookup stats: each process writes its figures every few seconds; readers sum the recent ones."""

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

from lookups.metrics import LookupMetrics, merge, summarise, thresholds
from lookups.models import ProcessStats

RECENT = timedelta(minutes=5)


def process_name() -> str:
    """This process as stats rows and warm reports name it: host:pid:role."""
    role = "worker" if any(a in ("qcluster", "runworker") for a in sys.argv) else "web"
    return f"{socket.gethostname()}:{os.getpid()}:{role}"


def flush(metrics: LookupMetrics, cache_size: int) -> None:
    """Write this process's figures (its row is replaced each time)."""
    with suppress(OperationalError):  # database down: the stats wait for the next flush
        ProcessStats.objects.update_or_create(
            process=process_name(),
            defaults={"data": {**metrics.raw(), "cache_size": cache_size}, "updated_at": Now()},
        )


def collect(metrics: LookupMetrics, cache_size: int) -> dict[str, Any]:
    """This process, the sum over every process that reported in the last five minutes,
    and each of them, with their alert flags."""
    rows = list(
        ProcessStats.objects.filter(updated_at__gte=timezone.now() - RECENT).values(
            "process", "data", "updated_at"
        )
    )
    return {
        "process": {"name": process_name(), "cache_size": cache_size, **summarise(metrics.raw())},
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
        "thresholds": thresholds(),
    }
