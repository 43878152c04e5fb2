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
        from controlplane.breakers.signals import breaker_transition
        from controlplane.errors.signals import error_group_created
        from controlplane.health import (  # noqa: F401 -- registers checks and the job kind
            alert_sources,
            conditions,
            delivery,
            probes,
            system_checks,
        )
        from controlplane.resilience.providers import set_health_reader
        from jobs.maintenance import maintenance_pass

        set_health_reader(probes.latest_statuses)
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="health.schedules")
        post_migrate.connect(
            conditions.on_post_migrate, sender=self, dispatch_uid="health.alert_channels"
        )
        breaker_transition.connect(
            alert_sources.on_breaker_transition, dispatch_uid="health.breaker_alerts"
        )
        error_group_created.connect(
            alert_sources.on_error_group_created, dispatch_uid="health.error_group_alerts"
        )
        maintenance_pass.connect(conditions.on_maintenance_pass, dispatch_uid="health.sweep")
