from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from controlplane.errors.retention import BATCH_SIZE, purge_old_errors


class Command(BaseCommand):
    help = "Delete error records older than ERROR_RETENTION_DAYS, in small batches."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, default=settings.ERROR_RETENTION_DAYS)
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)

    def handle(self, *args: Any, days: int, batch_size: int, **options: Any) -> None:
        if days < 1 or batch_size < 1:
            self.stderr.write("--days and --batch-size must be positive")
            raise SystemExit(2)
        deleted = purge_old_errors(
            days=days,
            batch_size=batch_size,
            progress=lambda total: self.stdout.write(f"  deleted {total} so far..."),
        )
        self.stdout.write(f"Deleted {deleted} error records older than {days} days.")
