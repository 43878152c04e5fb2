"""A new error group is announced once: not again for its later records, nor when a spooled
record is replayed twice or an older one is replayed after it (first_seen moves, the key
does not); a failed alert delivery's own group is not announced.

Error records are committed on the store's side connection, and other tests' workers sweep
them: every test here looks only at its own service's groups."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.utils import timezone

from controlplane.errors import store
from controlplane.errors.exceptions import ServiceUnavailableError
from controlplane.errors.models import ErrorGroup
from controlplane.errors.recording import build_row, record_error
from controlplane.health.conditions import catch_up_groups
from controlplane.health.models import AlertEvent


def new_groups(service: str) -> list[tuple[str, str]]:
    events = AlertEvent.objects.filter(kind="error.new_group", details__service=service)
    return list(events.values_list("summary", "status"))


def own_service() -> str:
    return f"billing-{uuid.uuid4().hex[:8]}"


def test_it_announces_a_new_group_once(db: Any) -> None:
    service = own_service()
    for _ in range(3):
        record_error(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service=service)
    assert new_groups(service) == [(f"New error: DEMO_TRANSIENT_FAILURE in {service}", "notice")]
    catch_up_groups()  # the sweep finds it announced
    assert len(new_groups(service)) == 1


def test_a_spooled_record_replayed_twice_announces_its_group_once(db: Any) -> None:
    service = own_service()
    row = build_row(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service=service)
    assert store.get_store().write(row) is True
    assert store.get_store().write(row) is False  # the replay of a row already stored
    assert len(new_groups(service)) == 1


def test_an_older_spooled_record_replayed_later_announces_nothing_new(db: Any) -> None:
    service = own_service()
    record_error(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service=service)
    older = build_row(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service=service)
    older["created_at"] = (timezone.now() - timedelta(minutes=2)).isoformat()  # spooled then
    assert store.get_store().write(older) is True  # first_seen moves two minutes back

    catch_up_groups()
    (event,) = AlertEvent.objects.filter(kind="error.new_group", details__service=service)
    group = ErrorGroup.objects.get(fingerprint=event.subject)
    assert event.dedup_key == f"error.new_group:{group.pk}"


def test_the_sweep_announces_a_group_whose_announcement_was_lost(db: Any) -> None:
    from controlplane.errors.signals import error_group_created
    from controlplane.health.alert_sources import on_error_group_created

    service = own_service()
    error_group_created.disconnect(dispatch_uid="health.error_group_alerts")
    try:
        record_error(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service=service)
    finally:
        error_group_created.connect(
            on_error_group_created, dispatch_uid="health.error_group_alerts"
        )
    assert new_groups(service) == []
    catch_up_groups()
    catch_up_groups()
    assert len(new_groups(service)) == 1


def test_failed_alert_deliveries_do_not_announce_their_group(db: Any) -> None:
    service = f"job:notifications.deliver-{uuid.uuid4().hex[:8]}"
    record_error(ServiceUnavailableError(code="ALERT_DELIVERY_FAILED"), service=service)
    catch_up_groups()
    assert new_groups(service) == []
