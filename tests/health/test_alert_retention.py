"""Ended alert events go after ERROR_RETENTION_DAYS with their deliveries; firing ones stay."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection

from controlplane.health import conditions
from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.models import AlertChannel, AlertDelivery, AlertEvent


def test_it_prunes_old_ended_events_only(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(conditions._last, "prune", None)
    AlertChannel.objects.create(name="mail", kind="email", target="ops@example.com")
    raise_alert(Alert("breaker.closed", "a", "Breaker a closed", {}, "old notice"))
    raise_alert(Alert("provider.unhealthy", "b", "Provider b is unhealthy"))  # still firing
    raise_alert(Alert("breaker.closed", "c", "Breaker c closed", {}, "recent notice"))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE health_alertevent SET created_at = now() - interval '100 days' "
            "WHERE dedup_key <> 'recent notice'"
        )

    assert conditions.prune() == 2  # the old notice and its delivery
    assert sorted(AlertEvent.objects.values_list("subject", flat=True)) == ["b", "c"]
    assert AlertDelivery.objects.count() == 2
    assert conditions.prune() == 0  # at most hourly
