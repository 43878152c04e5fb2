from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand

from controlplane.breakers.retention import purge_breaker_events
from controlplane.errors.retention import purge_old_errors
from jobs.retention import purge_finished_jobs
from lookups.retention import purge_lookup_reports

# What the daily schedules purge, each by its own setting (README, "Limits").
PURGES: dict[str, Callable[..., int]] = {
    "errors": purge_old_errors,
    "jobs": purge_finished_jobs,
    "breaker-events": purge_breaker_events,
    "lookup-reports": purge_lookup_reports,
}


class Command(BaseCommand):
    help = (
        "Delete what is past its retention: error records, finished jobs with their events, "
        "breaker events, cache-warm reports and stale process stats (each in small batches)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--only", choices=sorted(PURGES), action="append")

    def handle(self, *args: Any, only: list[str] | None, **options: Any) -> None:
        for name in only or PURGES:
            deleted = PURGES[name](
                progress=lambda total, name=name: self.stdout.write(f"  {name}: {total} so far")
            )
            self.stdout.write(f"{name}: deleted {deleted}")
