"""Breaker events are kept BREAKER_EVENT_RETENTION_DAYS."""

from __future__ import annotations

from io import StringIO
from typing import Any

from django.core.management import call_command

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import BreakerEvent
from tests.breakers.conftest import elapse_cooldown, execute, fail


def test_old_breaker_events_are_purged(fresh_name: str, settings: Any) -> None:
    settings.BREAKER_EVENT_RETENTION_DAYS = 90
    b = breaker(fresh_name, failure_threshold=1)
    fail(b, 1)
    elapse_cooldown(fresh_name)
    b.call(lambda: None)  # half-open, then closed: three events
    execute(
        "UPDATE breakers_breakerevent SET created_at = now() - interval '91 days'"
        " WHERE generation < 3"
    )
    out = StringIO()
    call_command("purge_old_data", "--only", "breaker-events", stdout=out)
    assert "breaker-events: deleted 2" in out.getvalue()
    assert list(BreakerEvent.objects.values_list("generation", flat=True)) == [3]
