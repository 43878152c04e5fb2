"""Per channel, at most max_per_hour deliveries start in a rolling hour; the rest are held
(rate_limited, shown in the admin) and sent as one digest once there is room."""

from __future__ import annotations

import json
from typing import Any

from django.db import connection

from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.conditions import digests
from controlplane.health.delivery import attempt
from controlplane.health.models import AlertDelivery, AlertEvent
from tests.health.conftest import signed, webhook


def test_it_holds_deliveries_over_the_limit_and_sends_them_in_one_digest(
    db: Any, receiver: Any
) -> None:
    url, script = receiver(200)
    channel = webhook(url, max_per_hour=2)
    ids = [
        raise_alert(Alert("error.new_group", f"fp{n}", f"New error {n}", {}, f"k{n}")).deliveries[0]
        for n in range(4)
    ]

    results = [attempt(pk, final=False).result for pk in ids]

    assert results == ["sent", "sent", "rate_limited", "rate_limited"]
    assert len(script.seen) == 2
    held = AlertDelivery.objects.filter(status="rate_limited", channel=channel)
    assert sorted(held.values_list("pk", flat=True)) == ids[2:]
    digests()  # no room yet: the hour is full
    assert not AlertEvent.objects.filter(kind="digest", subject=channel.name).exists()

    with connection.cursor() as cursor:  # an hour passes (database clock)
        cursor.execute(
            "UPDATE health_alertdelivery SET started_at = now() - interval '61 minutes' "
            "WHERE channel_id = %s",
            [channel.pk],
        )
    digests()
    digest = AlertEvent.objects.get(kind="digest", subject=channel.name)
    (digest_delivery,) = digest.deliveries.all()
    assert digest_delivery.channel_id == channel.pk
    assert attempt(digest_delivery.pk, final=False).result == "sent"

    body = json.loads(script.seen[2].body)
    assert signed(script.seen[2])
    assert [item["summary"] for item in body["details"]["items"]] == ["New error 2", "New error 3"]
    assert set(AlertDelivery.objects.filter(pk__in=ids[2:]).values_list("status", "digest")) == {
        ("digested", digest.pk)
    }
    digests()  # folded once
    assert AlertEvent.objects.filter(kind="digest", subject=channel.name).count() == 1
