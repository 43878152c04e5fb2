"""An email channel sends through Django's email backend (locmem in tests)."""

from __future__ import annotations

from typing import Any

from django.core import mail

from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.delivery import attempt
from controlplane.health.models import AlertChannel, AlertDelivery


def test_it_emails_an_alert_to_every_address_of_the_channel(db: Any) -> None:
    AlertChannel.objects.create(
        name="on-call", kind="email", target="oncall@example.com, lead@example.com"
    )
    raised = raise_alert(
        Alert("provider.unhealthy", "llamaparse", "Provider llamaparse is unhealthy (HTTP 503)")
    )
    (delivery_id,) = raised.deliveries

    assert attempt(delivery_id, final=False).result == "sent"

    (sent,) = mail.outbox
    assert sent.to == ["oncall@example.com", "lead@example.com"]
    assert "FIRING: Provider llamaparse is unhealthy (HTTP 503)" in sent.subject
    assert '"kind": "provider.unhealthy"' in sent.body
    delivery = AlertDelivery.objects.get(pk=delivery_id)
    assert (delivery.status, delivery.attempts, delivery.sent_at is not None) == ("sent", 1, True)


def test_it_sends_only_the_event_kinds_a_channel_asks_for(db: Any) -> None:
    AlertChannel.objects.create(
        name="breakers only", kind="email", target="ops@example.com", events=["breaker.opened"]
    )
    assert raise_alert(Alert("provider.unhealthy", "x", "x is down")).deliveries == []
    assert len(raise_alert(Alert("breaker.opened", "y", "y opened", {})).deliveries) == 1
