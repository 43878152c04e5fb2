from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.breakers.registry import registry
from controlplane.lib import notifications
from lookups import resolver


@pytest.fixture
def lookups(transactional_db: Any, settings: Any) -> Iterator[resolver.Lookups]:
    """This process's lookups, fresh, with its change listener already listening."""
    from django.db import connection

    settings.LOOKUP_WARM_WAIT_SECONDS = 0.5  # only this process answers here

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM lookups_microservice; DELETE FROM lookups_warmreport; "
            "DELETE FROM lookups_processstats; DELETE FROM breakers_breakerevent; "
            "DELETE FROM breakers_breaker"
        )
    registry.runtimes.clear()
    resolver.reset_lookups()
    service = resolver.get_lookups()
    service.listen()
    deadline = time.monotonic() + 10
    while not notifications.listener.is_listening(resolver.CHANNEL):
        assert time.monotonic() < deadline, "the change listener did not start"
        time.sleep(0.01)
    yield service
    resolver.reset_lookups()
    registry.runtimes.clear()


def settle(service: resolver.Lookups, quiet: float = 0.15, limit: float = 3.0) -> None:
    """Wait until the change notifications of the test's own writes have arrived (a value
    read before its invalidation arrives is, correctly, not cached)."""
    deadline = time.monotonic() + limit
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now_seen = (service.guard.resets, service.guard.changes)
        if now_seen != last:
            last, since = now_seen, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.01)


def fallback(slug: str) -> dict[str, Any]:
    """The slug-only answer while the database is unreachable: single lookup and batch item."""
    return {
        "slug": slug,
        "uuid": None,
        "source": "fallback",
        "fallback_used": True,
        "stale": False,
        "stale_age_seconds": None,
        "reason": {
            "code": "LOOKUP_DATABASE_UNAVAILABLE",
            "message": resolver.DATABASE_UNAVAILABLE.message,
            "recovery": "fallback",
        },
    }
