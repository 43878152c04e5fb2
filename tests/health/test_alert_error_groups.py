"""A new error group is announced once: not again for its later records, nor when a spooled
record is replayed twice; a failed alert delivery's own group is not announced."""

from __future__ import annotations

from typing import Any

from controlplane.errors import store
from controlplane.errors.exceptions import ServiceUnavailableError
from controlplane.errors.recording import build_row, record_error
from controlplane.health.conditions import catch_up_groups
from controlplane.health.models import AlertEvent


def new_groups() -> list[tuple[str, str]]:
    return list(AlertEvent.objects.filter(kind="error.new_group").values_list("summary", "status"))


def test_it_announces_a_new_group_once(db: Any) -> None:
    for _ in range(3):
        record_error(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service="billing")
    assert new_groups() == [("New error: DEMO_TRANSIENT_FAILURE in billing", "notice")]
    assert catch_up_groups() == 0  # the sweep finds it announced


def test_a_spooled_record_replayed_twice_announces_its_group_once(db: Any) -> None:
    row = build_row(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service="spooled")
    assert store.get_store().write(row) is True
    assert store.get_store().write(row) is False  # the replay of a row already stored
    assert len(new_groups()) == 1


def test_the_sweep_announces_a_group_whose_announcement_was_lost(db: Any) -> None:
    from controlplane.errors.signals import error_group_created
    from controlplane.health.alert_sources import on_error_group_created

    error_group_created.disconnect(dispatch_uid="health.error_group_alerts")
    try:
        record_error(ServiceUnavailableError(code="DEMO_TRANSIENT_FAILURE"), service="lost")
    finally:
        error_group_created.connect(
            on_error_group_created, dispatch_uid="health.error_group_alerts"
        )
    assert new_groups() == []
    assert catch_up_groups() == 1
    assert catch_up_groups() == 0
    assert len(new_groups()) == 1


def test_failed_alert_deliveries_do_not_announce_their_group(db: Any) -> None:
    record_error(
        ServiceUnavailableError(code="ALERT_DELIVERY_FAILED"), service="job:notifications.deliver"
    )
    assert new_groups() == []
