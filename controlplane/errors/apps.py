from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from controlplane.lib.notifications import listener
from controlplane.lib.schedules import ensure_schedule

SCHEDULES = (
    # (name, function, minutes between runs)
    ("errors: replay spool", "controlplane.errors.tasks.replay_error_spool", 1),
    ("errors: purge old records", "controlplane.errors.tasks.purge_errors", 24 * 60),
)


def ensure_schedules(using: str = "default", **kwargs: Any) -> None:
    for name, func, minutes in SCHEDULES:
        ensure_schedule(name, func, minutes, using)


class ErrorsConfig(AppConfig):
    name = "controlplane.errors"
    label = "errors"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from controlplane.errors import drain, tracelinks  # noqa: F401 -- registers its check

        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="errors.schedules")
        # Whenever this process's listener (re)connects, the database is back: drain.
        listener.on_connected(drain.on_database_connected)
