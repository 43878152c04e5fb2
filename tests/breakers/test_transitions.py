from __future__ import annotations

from typing import Any

import pytest

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.models import Breaker, BreakerEvent
from controlplane.breakers.registry import registry
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


def test_a_slow_probe_from_an_older_half_open_cannot_close_a_newer_one(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=1, half_open_max_probes=2)
    fail(b, 1)
    elapse_cooldown(b.name)
    slow = b.runtime.acquire()  # probe 1, generation 2
    other = b.runtime.acquire()  # probe 2 fails: open again (3)
    b.runtime.failure(other)
    elapse_cooldown(b.name)
    b.runtime.acquire()  # half-open again (4), probe taken and still running
    b.runtime.success(slow)  # the old probe finally answers
    row = Breaker.objects.get(name=b.name)
    assert (row.state, row.generation) == ("half_open", 4)
