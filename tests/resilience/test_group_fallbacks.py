"""A provider group's declared fallback answers when no provider does, and says so; without
one, every breaker open is a CircuitOpenError (wait for the first to reopen)."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.errors.exceptions import UserFacingError
from controlplane.resilience.failover import client_for_group
from controlplane.resilience.providers import client_for
from tests.resilience.flaky_server import Script
from tests.resilience.groups import GROUP

STATIC = {"type": "static", "status": 200, "json": {"answer": None, "degraded": True}}


def force_open(provider: str, seconds: float) -> None:
    assert client_for(provider).breaker.state == "closed"  # its row exists
    override_breaker(
        name=provider, action="force_open", reason="drill", actor=None, expires_in=seconds
    )


def test_a_static_fallback_answers_when_every_provider_fails(upstream_group: Any) -> None:
    up = upstream_group(Script([(500, {})]), Script([(503, {})]), fallback=STATIC)
    result = client_for_group(GROUP).post("/v1/chat", json={"q": "hi"})
    assert up.requests() == [1, 1]
    assert (result.response.status_code, result.response.json()) == (200, STATIC["json"])
    summary = result.summary()
    assert summary["provider"] is None
    assert (summary["fallback_used"], summary["fallback"]) == (True, "static")
    assert summary["fallback_reason"] == "providers_failed"
    assert [entry["outcome"] for entry in summary["tried"]] == ["failed", "failed"]


def test_a_static_fallback_answers_when_every_breaker_is_open(upstream_group: Any) -> None:
    up = upstream_group(Script([(200, {})]), Script([(200, {})]), fallback=STATIC)
    for name in up.names:
        force_open(name, 60)
    result = client_for_group(GROUP).get("/v1/models")
    assert up.requests() == [0, 0]
    assert result.fallback_used and result.fallback_reason == "breakers_open"
    assert [entry["reason"] for entry in result.summary()["tried"]] == ["breaker open"] * 2


def test_without_a_fallback_open_breakers_are_a_wait_for_the_first_to_reopen(
    upstream_group: Any,
) -> None:
    up = upstream_group(Script([(200, {})]), Script([(200, {})]))
    force_open(up.names[0], 300)
    force_open(up.names[1], 40)
    with pytest.raises(CircuitOpenError) as raised:
        client_for_group(GROUP).get("/v1/models")
    error = raised.value
    assert up.requests() == [0, 0]
    assert error.code == "PROVIDER_GROUP_CIRCUIT_OPEN"
    assert error.breaker_name == up.names[1]
    assert 30 < error.retry_after <= 40
    assert error.metadata["breakers"] == up.names


def test_a_provider_that_failed_makes_it_unavailable_not_a_wait(upstream_group: Any) -> None:
    # One provider was called and failed: waiting for the other's breaker is no promise.
    up = upstream_group(Script([(200, {})]), Script([(503, {})]))
    force_open(up.names[0], 60)
    with pytest.raises(UserFacingError) as raised:
        client_for_group(GROUP).get("/v1/models")
    assert not isinstance(raised.value, CircuitOpenError)
    assert raised.value.code == "PROVIDER_GROUP_UNAVAILABLE"
    assert up.requests() == [0, 1]
