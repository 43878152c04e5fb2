from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from controlplane.errors.spool import spool_path
from controlplane.errors.store import replay_spool


class Command(BaseCommand):
    help = "Write error records spooled while the database was down (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        result = replay_spool()
        if result.busy:
            raise CommandError("another replay is running; try again in a moment")
        self.stdout.write(
            f"{spool_path()}: {result.inserted} written, {result.duplicates} already present, "
            f"{result.rejected} rejected, {result.remaining} still waiting"
        )
        if result.remaining:
            raise CommandError("the database is still unreachable; rows kept for the next replay")
