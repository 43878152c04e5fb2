"""A channel whose target cannot be delivered to (set before validation, or straight in the
database) is refused at once, never retried; and a direct delivery that breaks does not
stop the deliveries after it."""

from __future__ import annotations

from typing import Any

from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.delivery import attempt, deliver_with_retries
from controlplane.health.models import AlertChannel, AlertDelivery
from tests.health.conftest import webhook


def test_an_unusable_url_is_refused_not_retried(db: Any) -> None:
    for n, target in enumerate(("ftp://hooks.example.com/x", "http://", "not a url at all")):
        AlertChannel.objects.create(name=f"bad {n}", kind="webhook", target=target)
    raised = raise_alert(Alert("worker.absent", "workers", "no worker"))

    outcomes = [attempt(pk, final=False) for pk in raised.deliveries]
    assert [o.result for o in outcomes] == ["refused"] * 3, outcomes
    statuses = AlertDelivery.objects.filter(pk__in=raised.deliveries).values_list(
        "status", flat=True
    )
    assert set(statuses) == {"failed"}


def test_one_broken_direct_delivery_does_not_stop_the_others(
    clean_alerts: None, receiver: Any, monkeypatch: Any
) -> None:
    url, _ = receiver(200)
    webhook(url, name="good")
    AlertChannel.objects.create(name="bad", kind="webhook", target="ftp://hooks.example.com/x")
    raised = raise_alert(Alert("worker.absent", "workers", "no worker"))
    first = min(raised.deliveries)
    real_attempt = attempt

    def breaks_first(delivery_id: int, *, final: bool) -> Any:
        if delivery_id == first:
            raise RuntimeError("the database went away mid-attempt")
        return real_attempt(delivery_id, final=final)

    monkeypatch.setattr("controlplane.health.delivery.attempt", breaks_first)
    deliver_with_retries(sorted(raised.deliveries))

    later = AlertDelivery.objects.get(pk=max(raised.deliveries))
    assert later.status in ("sent", "failed") and later.attempts == 1
