from __future__ import annotations

import signal
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate, pre_delete

from controlplane.lib.schedules import ensure_schedule


def ensure_schedules(using: str = "default", **kwargs: Any) -> None:
    # A safety net for deployments that run plain `qcluster`; `runworker` does this every second.
    ensure_schedule("jobs: maintenance", "jobs.tasks.maintenance", 1, using)
    ensure_schedule("jobs: purge finished jobs", "jobs.tasks.purge_jobs", 24 * 60, using)


def _ignore_group_sigterm(sender: Any, proc_name: str = "", **kwargs: Any) -> None:
    """django-q2 worker processes: a stray SIGTERM must not kill a running handler;
    runworker drains them through checkpoints and kills only past the drain time."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _release_idempotency_keys(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deleted client's jobs lose their creator (SET_NULL): their Idempotency-Keys go too,
    or two deleted clients who used the same key would collide in the per-client unique
    constraint and the deletion would fail."""
    from jobs.models import Job

    Job.objects.filter(created_by=instance).exclude(idempotency_key=None).update(
        idempotency_key=None
    )


class JobsConfig(AppConfig):
    name = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: they import models, which load after app configs.
        from django_q.signals import post_spawn

        from jobs import kinds  # noqa: F401 -- registers the built-in kinds
        from jobs.wakeups import listen_for_interrupts

        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="jobs.schedules")
        pre_delete.connect(
            _release_idempotency_keys,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="jobs.release_idempotency_keys",
        )
        post_spawn.connect(_ignore_group_sigterm, dispatch_uid="jobs.worker_sigterm")
        post_spawn.connect(listen_for_interrupts, dispatch_uid="jobs.listen_for_interrupts")
