from __future__ import annotations

import signal
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

from controlplane.lib.schedules import ensure_schedule


def ensure_schedules(using: str = "default", **kwargs: Any) -> None:
    # A safety net for deployments that run plain `qcluster`; `runworker` does this every second.
    ensure_schedule("jobs: maintenance", "jobs.tasks.maintenance", 1, using)


def _ignore_group_sigterm(sender: Any, proc_name: str = "", **kwargs: Any) -> None:
    """django-q2 worker processes: a stray SIGTERM must not kill a running handler;
    runworker drains them through checkpoints and kills only past the drain time."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: they import models, which load after app configs.
        from django_q.signals import post_spawn

        from jobs import kinds  # noqa: F401 -- registers the built-in kinds

        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="jobs.schedules")
        post_spawn.connect(_ignore_group_sigterm, dispatch_uid="jobs.worker_sigterm")
