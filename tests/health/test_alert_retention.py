"""Ended alert events go after ERROR_RETENTION_DAYS with their deliveries; firing ones stay.
Only this test's own events are aged and looked at: other tests may leave events behind."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from controlplane.health import conditions
from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.models import AlertChannel, AlertDelivery, AlertEvent


def test_it_prunes_old_ended_events_only(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(conditions._last, "prune", None)
    tag = uuid.uuid4().hex[:8]
    a, b, c = f"a-{tag}", f"b-{tag}", f"c-{tag}"
    channel = AlertChannel.objects.create(name=f"mail {tag}", kind="email", target="o@example.com")
    raise_alert(Alert("breaker.closed", a, "Breaker a closed", {}, f"old notice {tag}"))
    raise_alert(Alert("provider.unhealthy", b, "Provider b is unhealthy"))  # still firing
    raise_alert(Alert("breaker.closed", c, "Breaker c closed", {}, f"recent notice {tag}"))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE health_alertevent SET created_at = now() - interval '100 days' "
            "WHERE subject IN (%s, %s)",
            [a, b],
        )

    assert conditions.prune() >= 2  # the old notice and its delivery (and any left before)
    mine = AlertEvent.objects.filter(subject__in=[a, b, c])
    assert sorted(mine.values_list("subject", flat=True)) == [b, c]
    assert AlertDelivery.objects.filter(channel=channel).count() == 2
    assert conditions.prune() == 0  # at most hourly
