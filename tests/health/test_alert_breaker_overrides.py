"""Operator overrides are alerts too: forced open or disabled fires (who, why) until reset
or expiry; a client's own breakers are the client's business and alert nobody."""

from __future__ import annotations

import contextlib
from typing import Any

from controlplane.breakers.actions import claim_for_client, override_breaker, report_outcome
from controlplane.breakers.registry import registry
from controlplane.health.conditions import catch_up_breakers
from controlplane.health.models import AlertEvent
from tests.breakers.conftest import execute


def alerts(name: str) -> list[tuple[str, str]]:
    """The test's own breaker's events (other tests' processes may leave some of theirs)."""
    mine = AlertEvent.objects.filter(subject=name).order_by("id")
    return list(mine.values_list("kind", "status"))


def test_force_open_then_reset(make_breaker: Any, clean_alerts: None, ops_user: Any) -> None:
    b = make_breaker()
    b.allows()
    override_breaker(name=b.name, action="force_open", reason="vendor outage", actor=ops_user)
    forced = AlertEvent.objects.get(subject=b.name)
    assert forced.summary == f"Breaker {b.name} forced open by olga-ops: vendor outage"
    assert forced.details["actor"] == "olga-ops"

    override_breaker(name=b.name, action="reset", reason="vendor back", actor=ops_user)
    assert alerts(b.name) == [("breaker.forced", "resolved"), ("breaker.closed", "notice")]
    assert catch_up_breakers() == 0  # the sweep finds every change announced


def test_an_expired_override_is_announced(
    make_breaker: Any, clean_alerts: None, ops_user: Any
) -> None:
    b = make_breaker()
    b.allows()
    override_breaker(name=b.name, action="disable", reason="noisy", actor=ops_user, expires_in=60)
    execute(
        "UPDATE breakers_breaker SET override_expires_at = now() - interval '1 ms' WHERE name = %s",
        [b.name],
    )
    registry.invalidate(b.name)
    b.call(lambda: "ok")
    assert alerts(b.name) == [
        ("breaker.forced", "resolved"),
        ("breaker.override_expired", "notice"),
    ]


def test_the_sweep_announces_a_change_whose_announcement_was_lost(
    make_breaker: Any, clean_alerts: None
) -> None:
    from controlplane.breakers.signals import breaker_transition
    from controlplane.health.alert_sources import on_breaker_transition

    b = make_breaker(failure_threshold=1)
    breaker_transition.disconnect(dispatch_uid="health.breaker_alerts")
    try:
        b.call(lambda: "ok")
        with contextlib.suppress(ZeroDivisionError):
            b.call(lambda: 1 / 0)
    finally:
        breaker_transition.connect(on_breaker_transition, dispatch_uid="health.breaker_alerts")
    assert alerts(b.name) == []
    assert catch_up_breakers() == 1  # fresh_name left no other breaker to catch up
    assert catch_up_breakers() == 0
    assert alerts(b.name) == [("breaker.opened", "firing")]


def test_a_clients_breaker_alerts_nobody(
    fresh_name: str, clean_alerts: None, client_user: Any
) -> None:
    claim_for_client(name=fresh_name, client=client_user)
    for _ in range(5):
        report_outcome(name=fresh_name, outcome="failure")
    assert alerts(fresh_name) == []
    assert catch_up_breakers() == 0
