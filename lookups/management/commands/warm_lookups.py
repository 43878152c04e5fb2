from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from controlplane.errors.exceptions import UserFacingError
from lookups.resolver import get_lookups
from lookups.warming import warm_everywhere


class Command(BaseCommand):
    help = "Warm the slug->UUID cache of every running web and worker process."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--slugs", nargs="*", help="Only these slugs (default: the newest).")
        parser.add_argument("--wait", type=float, default=None, help="Seconds to collect answers.")

    def handle(
        self, *args: Any, slugs: list[str] | None, wait: float | None, **options: Any
    ) -> None:
        try:
            result = warm_everywhere(get_lookups(), slugs=slugs or None, wait_seconds=wait)
        except UserFacingError as exc:
            raise CommandError(exc.user_message) from exc
        self.stdout.write(f"Warm request {result['request_id']}:")
        for report in result["reports"]:
            self.stdout.write(f"  {report['process']}: {report['warmed']} entries")
