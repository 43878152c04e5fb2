from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_schedules(using: str = "default", **kwargs: Any) -> None:
    from django.conf import settings

    from controlplane.schedules import ensure_schedule

    ensure_schedule(
        "health: probe providers",
        "controlplane.health.tasks.probe_providers",
        settings.PROVIDER_HEALTH_INTERVAL_MINUTES,
        using,
    )


class HealthConfig(AppConfig):
    name = "controlplane.health"
    label = "health"
    verbose_name = "Health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="health.schedules")
