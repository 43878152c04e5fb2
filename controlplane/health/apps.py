from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_schedules(using: str = "default", **kwargs: Any) -> None:
    from django.conf import settings
    from django_q.models import Schedule

    Schedule.objects.using(using).update_or_create(
        name="health: probe providers",
        defaults={
            "func": "controlplane.health.tasks.probe_providers",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.PROVIDER_HEALTH_INTERVAL_MINUTES,
        },
    )


class HealthConfig(AppConfig):
    name = "controlplane.health"
    label = "health"
    verbose_name = "Health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="health.schedules")
