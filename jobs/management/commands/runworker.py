from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jobs.worker import Worker


class Command(BaseCommand):
    help = (
        "Run the job worker: a django-q2 cluster plus job maintenance, with a bounded "
        "graceful shutdown on SIGTERM/SIGINT (JOB_DRAIN_SECONDS)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        raise SystemExit(Worker().run())
