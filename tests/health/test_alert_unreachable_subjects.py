"""Firing alerts whose subject is gone end quietly in the sweep: a provider no longer
configured, a breaker deleted, a host's spool backlog nobody re-confirms; the others fire on."""

from __future__ import annotations

import socket
import uuid
from typing import Any

from django.db import connection

from controlplane.breakers.models import Breaker
from controlplane.health.alert_repairs import unreachable_alerts
from controlplane.health.alert_sources import breaker_alert
from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.conditions import spool_backlog
from controlplane.health.models import AlertEvent


def status(event_id: int | None) -> str:
    return AlertEvent.objects.get(pk=event_id).status


def test_a_removed_provider_stops_firing(db: Any, settings: Any) -> None:
    gone, kept = f"ocr-{uuid.uuid4().hex[:6]}", f"llm-{uuid.uuid4().hex[:6]}"
    settings.PROVIDERS = {kept: {"mode": "mock"}}
    gone_id = raise_alert(Alert("provider.unhealthy", gone, f"{gone} down")).event_id
    kept_id = raise_alert(Alert("provider.unhealthy", kept, f"{kept} down")).event_id

    ended = unreachable_alerts()
    assert gone_id in ended and kept_id not in ended
    assert (status(gone_id), status(kept_id)) == ("resolved", "firing")
    assert not AlertEvent.objects.filter(subject=gone, kind="provider.recovered").exists()


def test_a_deleted_breaker_stops_firing(make_breaker: Any, clean_alerts: None) -> None:
    b = make_breaker()
    b.allows()
    breaker_alert(name=b.name, from_state="closed", to_state="open", generation=1)
    (opened,) = AlertEvent.objects.filter(subject=b.name)
    assert opened.id not in unreachable_alerts()  # the breaker is still there

    Breaker.objects.filter(name=b.name).delete()
    assert opened.id in unreachable_alerts()
    assert status(opened.id) == "resolved"


def test_a_spool_backlog_nobody_confirms_ends(db: Any, settings: Any) -> None:
    settings.ALERT_SPOOL_BACKLOG_BYTES = 1
    settings.ERROR_SPOOL_PATH.write_text('{"support_id": "x"}\n' * 10)  # waiting records
    here = socket.gethostname()
    gone = f"old-host-{uuid.uuid4().hex[:6]}"
    spool_backlog()  # this host's backlog: fires, confirmed
    gone_id = raise_alert(Alert("spool.backlog", gone, "backlog on a host now gone")).event_id
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE health_alertevent SET created_at = now() - interval '16 minutes', "
            "confirmed_at = NULL WHERE id = %s",
            [gone_id],
        )
        cursor.execute(
            "UPDATE health_alertevent SET created_at = now() - interval '16 minutes' "
            "WHERE kind = 'spool.backlog' AND subject = %s",
            [here],
        )

    ended = unreachable_alerts()
    assert gone_id in ended
    assert AlertEvent.objects.get(kind="spool.backlog", subject=here, status="firing")
