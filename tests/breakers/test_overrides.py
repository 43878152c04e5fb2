"""Operator overrides: audited, obeyed by every call, and reverted when they expire."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.models import Breaker, BreakerEvent
from controlplane.breakers.registry import registry
from controlplane.errors.exceptions import ValidationError
from tests.breakers.conftest import execute, fail
from tests.breakers.test_transitions import events


def test_overrides_are_audited_and_obeyed(make_breaker: Any, ops_user: Any) -> None:
    b = make_breaker(failure_threshold=1)
    b.call(lambda: None)
    with pytest.raises(ValidationError):
        override_breaker(name=b.name, action="force_open", reason="  ", actor=ops_user)

    override_breaker(
        name=b.name, action="force_open", reason="upstream maintenance", actor=ops_user
    )
    with pytest.raises(CircuitOpenError) as refused:
        b.call(lambda: None)
    assert refused.value.breaker_state == "forced_open"

    override_breaker(
        name=b.name, action="disable", reason="flapping, let it through", actor=ops_user
    )
    fail(b, 3)  # recorded, but never refused
    assert b.call(lambda: "through") == "through"

    override_breaker(name=b.name, action="reset", reason="all good", actor=ops_user)
    row = Breaker.objects.get(name=b.name)
    assert (row.state, row.override, row.override_by) == ("closed", "", ops_user.username)
    kinds = BreakerEvent.objects.filter(breaker__name=b.name, kind="override")
    assert list(kinds.order_by("generation").values_list("reason", "actor")) == [
        ("upstream maintenance", ops_user.username),
        ("flapping, let it through", ops_user.username),
        ("all good", ops_user.username),
    ]
    assert LogEntry.objects.filter(object_id=str(row.pk), user=ops_user).count() == 3


def test_a_forced_open_with_expiry_reverts_to_half_open(make_breaker: Any, ops_user: Any) -> None:
    b = make_breaker()
    b.call(lambda: None)
    override_breaker(
        name=b.name, action="force_open", reason="1 min", actor=ops_user, expires_in=60
    )
    execute(
        "UPDATE breakers_breaker SET override_expires_at = now() - interval '1 ms' WHERE name = %s",
        [b.name],
    )
    registry.invalidate(b.name)
    assert b.call(lambda: "probe") == "probe"  # expired -> half-open -> this call probed
    row = Breaker.objects.get(name=b.name)
    assert (row.state, row.override) == ("closed", "")
    assert [e[1:] for e in events(b.name)][-3:] == [
        ("override", "closed", "open"),
        ("override_expired", "open", "half_open"),
        ("transition", "half_open", "closed"),
    ]


def test_a_disabled_breaker_counts_failures_but_never_trips(
    make_breaker: Any, ops_user: Any
) -> None:
    b = make_breaker(failure_threshold=2)
    b.allows()
    override_breaker(name=b.name, action="disable", reason="maintenance", actor=ops_user)
    fail(b, 5)
    row = Breaker.objects.get(name=b.name)
    assert (row.state, row.override, row.total_failures) == ("closed", "disabled", 5)
