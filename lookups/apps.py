from __future__ import annotations

import logging
import sys
import threading

from django.apps import AppConfig

logger = logging.getLogger("controlplane.lookups")
SERVER_COMMANDS = ("runserver", "qcluster", "runworker", "gunicorn")


def _warm_soon() -> None:
    def run() -> None:
        from django.db import connection

        from lookups.flow import get_lookups

        try:
            logger.info("warmed %d lookup cache entries at start", get_lookups().warm())
        except Exception:
            logger.exception("warming the lookup cache at start failed")
        finally:
            connection.close()

    threading.Timer(1.0, run).start()


class LookupsConfig(AppConfig):
    name = "lookups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        if settings.LOOKUP_WARM_ON_START and any(
            cmd in arg for arg in sys.argv for cmd in SERVER_COMMANDS
        ):
            _warm_soon()
