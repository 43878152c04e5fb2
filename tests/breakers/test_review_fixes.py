"""Regression tests for breaker defects found in review."""

from __future__ import annotations

from typing import Any

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.models import Breaker
from tests.breakers.conftest import elapse_cooldown, fail
from tests.errors.helpers import assert_envelope


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


def test_a_disabled_breaker_counts_failures_but_never_trips(
    make_breaker: Any, ops_user: Any
) -> None:
    b = make_breaker(failure_threshold=2)
    b.allows()
    override_breaker(name=b.name, action="disable", reason="maintenance", actor=ops_user)
    fail(b, 5)
    row = Breaker.objects.get(name=b.name)
    assert (row.state, row.override, row.total_failures) == ("closed", "disabled", 5)


def test_clients_cannot_drive_this_services_own_breakers(
    fresh_name: str, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.PROVIDERS = {"openai": {"mode": "mock"}}
    api = api_as(client_user)
    for name in ("lookups-db", "openai"):
        response = api.post(
            f"/api/v1/breakers/{name}/outcomes/", {"outcome": "failure"}, format="json"
        )
        assert_envelope(response, 403, "BREAKER_RESERVED")
        assert_envelope(api.get(f"/api/v1/breakers/{name}/permit/"), 403, "BREAKER_RESERVED")
