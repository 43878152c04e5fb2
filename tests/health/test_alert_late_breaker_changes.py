"""A breaker change announced late (a slow process, the sweep replaying an old "closed" or
"override expired") neither alerts nor ends the firing alert of a newer generation."""

from __future__ import annotations

from typing import Any

from controlplane.health.alert_sources import breaker_alert
from controlplane.health.models import AlertEvent


def events(name: str) -> list[tuple[str, int, str]]:
    rows = AlertEvent.objects.filter(subject=name).order_by("id")
    return [(e.kind, e.details["generation"], e.status) for e in rows]


def test_a_late_close_leaves_a_newer_opening_firing(make_breaker: Any, clean_alerts: None) -> None:
    b = make_breaker()
    b.allows()
    breaker_alert(name=b.name, from_state="half_open", to_state="open", generation=5)
    breaker_alert(name=b.name, from_state="half_open", to_state="closed", generation=3)

    assert events(b.name) == [("breaker.opened", 5, "firing")]


def test_a_late_expiry_leaves_a_newer_override_firing(
    make_breaker: Any, clean_alerts: None
) -> None:
    b = make_breaker()
    b.allows()
    breaker_alert(
        name=b.name, from_state="closed", to_state="open", generation=7,
        kind="override", action="force_open", actor="olga-ops", reason="vendor outage",
    )  # fmt: skip
    breaker_alert(
        name=b.name, from_state="open", to_state="closed", generation=4, kind="override_expired"
    )

    assert events(b.name) == [("breaker.forced", 7, "firing")]


def test_a_current_close_still_ends_the_opening(make_breaker: Any, clean_alerts: None) -> None:
    b = make_breaker()
    b.allows()
    breaker_alert(name=b.name, from_state="closed", to_state="open", generation=1)
    breaker_alert(name=b.name, from_state="half_open", to_state="closed", generation=3)

    assert events(b.name) == [("breaker.opened", 1, "resolved"), ("breaker.closed", 3, "notice")]
