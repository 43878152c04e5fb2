"""Start-up work for servers that run no management command first (gunicorn)."""

from __future__ import annotations

import time

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


def listen_for_changes(wait_seconds: float) -> bool:
    """Subscribe this process's NOTIFY-guarded caches (API tokens, breakers, lookups) now
    and wait up to ``wait_seconds`` until their channels are listened to.

    Each cache is trusted only while its channel is; subscribed lazily, a fresh process
    reads the database for its first requests (the first lookup starts the listener, whose
    LISTEN comes a poll later), so even a second identical lookup answered "db". Called in
    each gunicorn worker before its first request. False if the database did not answer
    in time: the listener keeps trying, and the caches are bypassed until it succeeds."""
    from controlplane.breakers.registry import registry
    from controlplane.lib.authentication import cache as token_cache
    from lookups.resolver import get_lookups

    lookups = get_lookups()
    token_cache.guard.listen()
    registry.guard.listen()
    lookups.listen()
    guards = (token_cache.guard, registry.guard, lookups.guard)
    deadline = time.monotonic() + wait_seconds
    while not all(guard.trusted() for guard in guards):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True
