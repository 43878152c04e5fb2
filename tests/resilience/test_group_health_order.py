"""A provider group tries its providers healthiest first: healthy, unknown, degraded, then
unhealthy last, or never when the group says ``try_unhealthy: false``."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.errors.exceptions import UserFacingError
from controlplane.resilience.failover import client_for_group
from tests.resilience.flaky_server import Script
from tests.resilience.groups import GROUP


def test_a_healthy_provider_is_tried_before_an_unhealthy_one_listed_first(
    upstream_group: Any, health_of: Any
) -> None:
    up = upstream_group(Script([(200, {})]), Script([(200, {})]))
    health_of({up.names[0]: "unhealthy", up.names[1]: "healthy"})
    result = client_for_group(GROUP).get("/v1/models")
    assert result.provider == up.names[1]
    assert up.requests() == [0, 1]


def test_the_order_is_healthy_unknown_degraded_unhealthy(
    upstream_group: Any, health_of: Any
) -> None:
    up = upstream_group(*(Script([(503, {})]) for _ in range(4)))
    a, b, c, d = up.names
    health_of({a: "unhealthy", b: "degraded", d: "healthy"})  # c: never probed
    with pytest.raises(UserFacingError) as raised:
        client_for_group(GROUP).get("/v1/models")
    assert [entry["provider"] for entry in raised.value.metadata["tried"]] == [d, c, b, a]
    assert up.requests() == [1, 1, 1, 1]


def test_unhealthy_providers_are_skipped_when_the_group_says_so(
    upstream_group: Any, health_of: Any
) -> None:
    up = upstream_group(Script([(200, {})]), Script([(503, {})]), try_unhealthy=False)
    health_of({up.names[0]: "unhealthy"})
    with pytest.raises(UserFacingError) as raised:
        client_for_group(GROUP).get("/v1/models")
    assert up.requests() == [0, 1]
    assert raised.value.metadata["tried"][1] == {
        "provider": up.names[0],
        "outcome": "skipped",
        "reason": "unhealthy",
    }


def test_unreadable_health_keeps_the_configured_order(upstream_group: Any) -> None:
    from controlplane.resilience import providers

    up = upstream_group(Script([(200, {})]), Script([(200, {})]))

    def broken() -> dict[str, str]:
        raise RuntimeError("health table unreachable")

    installed = providers._health_reader
    providers.set_health_reader(broken)
    try:
        assert client_for_group(GROUP).get("/v1/models").provider == up.names[0]
    finally:
        providers.set_health_reader(installed)
