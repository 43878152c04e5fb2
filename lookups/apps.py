from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.db import connection
from django.db.models.signals import post_migrate

from controlplane.lib.schedules import ensure_schedule

logger = logging.getLogger("controlplane.lookups")
SERVER_COMMANDS = ("runserver", "qcluster", "runworker", "gunicorn")


def ensure_schedules(using: str = "default", **kwargs: Any) -> None:
    ensure_schedule("lookups: purge old reports", "lookups.tasks.purge_reports", 24 * 60, using)


class LookupsConfig(AppConfig):
    name = "lookups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: they import models, which load after app configs.
        from controlplane.breakers.circuit import reserve
        from controlplane.breakers.signals import breaker_transition
        from lookups import resolver

        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="lookups.schedules")
        reserve(resolver.BREAKER)  # this service's own breaker: not for remote reports
        breaker_transition.connect(
            resolver.count_breaker_opens, dispatch_uid="lookups.breaker_opens"
        )
        if settings.LOOKUP_WARM_ON_START and any(
            cmd in arg for arg in sys.argv for cmd in SERVER_COMMANDS
        ):
            threading.Timer(1.0, _warm_at_start).start()


def _warm_at_start() -> None:
    from lookups.resolver import get_lookups  # models are loaded by now, not at import

    try:
        logger.info("warmed %d lookup cache entries at start", get_lookups().warm())
    except Exception:
        logger.exception("warming the lookup cache at start failed")
    finally:
        connection.close()
