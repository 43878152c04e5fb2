"""Start-up guard for servers that do not run Django's system checks themselves (gunicorn)."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.management.base import SystemCheckError


def refuse_bad_production_config() -> None:
    if settings.ENVIRONMENT != "production":
        return
    errors = [m for m in checks.run_checks(include_deployment_checks=True) if m.is_serious()]
    if errors:
        raise SystemCheckError(
            "Refusing to start with ENVIRONMENT=production:\n" + "\n".join(str(e) for e in errors)
        )
