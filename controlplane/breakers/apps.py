from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from controlplane.lib.schedules import ensure_schedule


def ensure_schedules(using: str = "default", **kwargs: Any) -> None:
    ensure_schedule(
        "breakers: purge old events", "controlplane.breakers.tasks.purge_events", 24 * 60, using
    )


class BreakersConfig(AppConfig):
    name = "controlplane.breakers"
    label = "breakers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="breakers.schedules")
