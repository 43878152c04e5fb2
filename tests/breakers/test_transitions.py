from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from django.contrib.admin.models import LogEntry

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.models import Breaker, BreakerEvent
from controlplane.breakers.runtime import CircuitOpenError, Permit, registry
from controlplane.errors.exceptions import ValidationError
from tests.breakers.conftest import elapse_cooldown, execute, fail


def events(name: str) -> list[tuple[int, str, str, str]]:
    return list(
        BreakerEvent.objects.filter(breaker__name=name)
        .order_by("generation")
        .values_list("generation", "kind", "from_state", "to_state")
    )


def test_consecutive_failures_trip_it_once(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=3)
    raised = fail(b, 5)
    assert [type(e).__name__ for e in raised] == ["RuntimeError"] * 3 + ["CircuitOpenError"] * 2
    opened = raised[3]
    assert opened.code == f"{b.name.upper().replace('-', '_')}_CIRCUIT_OPEN"
    assert opened.http_status == 503
    assert 59 < opened.retry_after <= 60
    assert opened.support_id
    assert events(b.name) == [(1, "transition", "closed", "open")]
    row = Breaker.objects.get(name=b.name)
    assert (row.state, row.generation, row.total_failures) == ("open", 1, 3)


def test_a_success_resets_the_consecutive_count(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=3)
    fail(b, 2)
    assert b.call(lambda: "fine") == "fine"
    fail(b, 2)
    assert Breaker.objects.get(name=b.name).state == "closed"


def test_sliding_window_counts_only_recent_failures(make_breaker: Any) -> None:
    b = make_breaker(policy="window", failure_threshold=3, window_seconds=300)
    fail(b, 2)
    # Those two happened 10 minutes ago, as far as the database clock is concerned.
    execute(
        "UPDATE breakers_breaker SET failure_times = "
        "ARRAY(SELECT t - interval '600 s' FROM unnest(failure_times) t) WHERE name = %s",
        [b.name],
    )
    registry.invalidate(b.name)
    fail(b, 2)
    assert Breaker.objects.get(name=b.name).state == "closed"
    fail(b, 1)
    assert Breaker.objects.get(name=b.name).state == "open"


def test_failure_rate_over_minimum_calls(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=4)
    fail(b, 3)
    assert Breaker.objects.get(name=b.name).state == "closed"
    fail(b, 1)
    assert Breaker.objects.get(name=b.name).state == "open"


def test_half_open_probe_success_closes(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=1)
    fail(b, 1)
    elapse_cooldown(b.name)
    assert b.call(lambda: "probe ok") == "probe ok"
    assert Breaker.objects.get(name=b.name).state == "closed"
    assert events(b.name) == [
        (1, "transition", "closed", "open"),
        (2, "transition", "open", "half_open"),
        (3, "transition", "half_open", "closed"),
    ]


def test_half_open_probe_failure_reopens_with_a_longer_cooldown(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=1, cooldown_seconds=10, cooldown_growth=3)
    fail(b, 1)
    elapse_cooldown(b.name)
    fail(b, 1)
    row = Breaker.objects.get(name=b.name)
    assert (row.state, row.reopen_count) == ("open", 1)
    assert 29 < (row.open_until - row.opened_at).total_seconds() <= 30
    assert events(b.name)[-1] == (3, "transition", "half_open", "open")


def test_half_open_admits_only_the_configured_probes(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=1, half_open_max_probes=2)
    fail(b, 1)
    elapse_cooldown(b.name)
    first, second = b.runtime.acquire(), b.runtime.acquire()
    assert first.probe and second.probe
    with pytest.raises(CircuitOpenError):
        b.runtime.acquire()


def test_an_expired_probe_lease_is_reclaimed(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=1, half_open_max_probes=1, probe_lease_seconds=30)
    fail(b, 1)
    elapse_cooldown(b.name)
    b.runtime.acquire()  # a prober that will never report back
    with pytest.raises(CircuitOpenError):
        b.runtime.acquire()
    execute(
        "UPDATE breakers_breaker SET probe_leases = "
        "ARRAY(SELECT t - interval '31 s' FROM unnest(probe_leases) t) WHERE name = %s",
        [b.name],
    )
    assert b.runtime.acquire().probe


def test_results_from_an_older_generation_are_ignored(make_breaker: Any, ops_user: Any) -> None:
    b = make_breaker(failure_threshold=1)
    old = b.runtime.acquire()
    override_breaker(name=b.name, action="reset", reason="fresh start", actor=ops_user)
    b.runtime.failure(old)
    assert Breaker.objects.get(name=b.name).state == "closed"


def test_client_errors_do_not_count(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=1)
    request = httpx.Request("GET", "http://upstream/x")

    def not_found() -> None:
        raise httpx.HTTPStatusError(
            "404", request=request, response=httpx.Response(404, request=request)
        )

    with pytest.raises(httpx.HTTPStatusError):
        b.call(not_found)
    assert Breaker.objects.get(name=b.name).state == "closed"


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


def test_decorator_and_context_managers_sync_and_async(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=2)

    @b
    def sync_fn(x: int) -> int:
        return x * 2

    @b
    async def async_fn(x: int) -> int:
        return x * 3

    assert sync_fn(2) == 4
    assert asyncio.run(async_fn(2)) == 6
    with b:
        pass
    with pytest.raises(RuntimeError), b:
        raise RuntimeError("one")

    async def twice() -> None:
        async with b:
            raise RuntimeError("two")

    with pytest.raises(RuntimeError):
        asyncio.run(twice())
    assert Breaker.objects.get(name=b.name).state == "open"
    with pytest.raises(CircuitOpenError):
        sync_fn(1)


def test_database_unreachable_fail_open_then_local_trip(make_breaker: Any, settings: Any) -> None:
    from controlplane import sidedb

    b = make_breaker(failure_threshold=2, fail_open=True)
    b.call(lambda: None)  # known: closed, fail_open
    side = registry.side
    registry.side = sidedb.SideConnection(lambda: {"host": "/nonexistent", "dbname": "x"})
    try:
        registry.invalidate(b.name)
        assert b.call(lambda: "local") == "local"
        assert registry.degraded
        fail(b, 2)
        with pytest.raises(CircuitOpenError):
            b.call(lambda: None)
    finally:
        registry.side = side
        registry.database_ok()


def test_database_unreachable_fail_closed_refuses(make_breaker: Any) -> None:
    from controlplane import sidedb

    b = make_breaker(fail_open=False)
    b.call(lambda: None)
    side = registry.side
    registry.side = sidedb.SideConnection(lambda: {"host": "/nonexistent", "dbname": "x"})
    try:
        registry.invalidate(b.name)
        with pytest.raises(CircuitOpenError):
            b.call(lambda: None)
    finally:
        registry.side = side
        registry.database_ok()


def test_a_permit_from_local_state_is_flagged() -> None:
    assert Permit(3, local=True).local
