from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate

from controlplane.lib.schedules import ensure_schedule


def ensure_schedules(using: str = "default", **kwargs: Any) -> None:
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
        # Imported here, not at the top: they import models, which load after app configs.
        from controlplane.health import probes, system_checks  # noqa: F401 -- registers checks
        from controlplane.resilience.providers import set_health_reader

        set_health_reader(probes.latest_statuses)
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="health.schedules")
