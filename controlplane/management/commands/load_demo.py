from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from controlplane.demo import DemoDataRefused, load_demo_data


class Command(BaseCommand):
    help = "Create demo groups, users and API tokens (idempotent; refused in production)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            logins = load_demo_data()
        except DemoDataRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write("Demo logins (user / password / group / API token):")
        for login in logins:
            self.stdout.write(
                f"  {login.username:<13} {login.password:<6} {login.group:<10} {login.token}"
            )
