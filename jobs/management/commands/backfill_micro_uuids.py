from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from jobs.backfill import backfill_micro_uuids


class Command(BaseCommand):
    help = "Fill micro_uuid for jobs whose micro_id was not resolved (safe to rerun)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        def progress(done: int, total: int) -> None:
            self.stdout.write(f"  {done}/{total} jobs examined")

        report = backfill_micro_uuids(batch_size=max(1, batch_size), progress=progress)
        self.stdout.write(
            f"Examined {report['examined']}, filled {report['filled']}, "
            f"still unresolved {report['unresolved']}."
        )
        for slug, count in report["unresolved_slugs"].items():
            self.stdout.write(f"  unresolved: {slug} ({count} jobs)")
