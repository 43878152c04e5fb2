"""While a half-open breaker's probe slots are all taken, it refuses everyone else until the
first probe's lease could end (not "in a second", which only brings the caller back to be
refused again); and it says how many calls may start now, for callers that let waiting
work through (jobs)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.breakers.exceptions import CircuitOpenError
from tests.breakers.conftest import elapse_cooldown, fail


def test_taken_probe_slots_refuse_until_the_first_lease_could_end(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=1, half_open_max_probes=1, probe_lease_seconds=30)
    fail(b, 1)
    elapse_cooldown(b.name)
    assert b.refusal() is None  # the cooldown is over: a probe may go
    permit = b.runtime.acquire()  # in flight, as another process's would be
    assert permit.probe

    refusal = b.refusal()  # no NOTIFY announced the lease: read, not taken from the cache
    assert refusal is not None and refusal.breaker_state == "half_open"
    assert 28 < refusal.retry_after <= 30
    with pytest.raises(CircuitOpenError) as refused:
        b.runtime.acquire()
    assert 28 < refused.value.retry_after <= 30

    b.runtime.success(permit)  # the probe's result frees everyone at once
    assert b.refusal() is None and b.state == "closed"


def test_free_slots_say_how_many_calls_may_start_now(make_breaker: Any) -> None:
    b = make_breaker(failure_threshold=1, half_open_max_probes=2)
    assert b.runtime.free_slots() is None  # closed: any number
    fail(b, 1)
    assert b.runtime.free_slots() == 0  # open, cooling down
    elapse_cooldown(b.name)
    assert b.runtime.free_slots() == 2  # the next call turns it half-open
    first = b.runtime.acquire()
    assert b.runtime.free_slots() == 1
    second = b.runtime.acquire()
    assert b.runtime.free_slots() == 0
    b.runtime.failure(first)  # reopens: the other probe's slot is gone with its generation
    assert b.runtime.free_slots() == 0 and b.state == "open"
    b.runtime.success(second)  # a result from the older half-open changes nothing
    assert b.state == "open"
