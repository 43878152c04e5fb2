"""A provider group fails over to the next provider on the provider's failures only, each
provider with its own attempts, and says who answered and who did not."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.errors.exceptions import UserFacingError
from controlplane.errors.models import ErrorRecord
from controlplane.resilience.failover import client_for_group
from tests.resilience.flaky_server import Script
from tests.resilience.groups import GROUP


def code_of(name: str, kind: str) -> str:
    return f"{name.upper().replace('-', '_')}_{kind}_ERROR"


def test_it_fails_over_from_a_failing_provider_to_a_healthy_one(upstream_group: Any) -> None:
    up = upstream_group(
        Script([(500, {})]), Script([(200, {})]), per_provider=[{"max_attempts": 2}, {}]
    )
    result = client_for_group(GROUP).get("/v1/models")
    assert result.provider == up.names[1]
    assert result.response.status_code == 200
    assert up.requests() == [2, 1]  # the first provider's own two attempts, then the second
    assert result.summary() == {
        "group": GROUP,
        "provider": up.names[1],
        "tried": [
            {
                "provider": up.names[0],
                "outcome": "failed",
                "code": code_of(up.names[0], "SERVER"),
                "attempts": 2,
            }
        ],
        "fallback_used": False,
    }


def test_each_provider_has_its_own_attempts_and_the_failure_names_them_all(
    upstream_group: Any,
) -> None:
    up = upstream_group(
        Script([(503, {})]), Script([(502, {})]), per_provider=[{"max_attempts": 3}, {}]
    )
    with pytest.raises(UserFacingError) as raised:
        client_for_group(GROUP).get("/v1/models")
    error = raised.value
    assert up.requests() == [3, 1]
    assert (error.code, error.http_status, error.retryable) == (
        "PROVIDER_GROUP_UNAVAILABLE",
        503,
        True,
    )
    assert error.metadata["tried"] == [
        {"provider": up.names[0], "outcome": "failed", "code": code_of(up.names[0], "SERVER"),
         "attempts": 3},
        {"provider": up.names[1], "outcome": "failed", "code": code_of(up.names[1], "SERVER"),
         "attempts": 1},
    ]  # fmt: skip
    assert error.metadata["fallback"] == "none declared"
    record = ErrorRecord.objects.get(support_id=error.support_id)
    assert (record.code, record.service) == ("PROVIDER_GROUP_UNAVAILABLE", GROUP)
    upstream_statuses = [f["upstream"]["status"] for f in record.context["failures"]]
    assert upstream_statuses == [503, 502]


def test_a_wrong_request_stops_the_group(upstream_group: Any) -> None:
    # A 400 says the request is wrong: the next provider would refuse it too.
    up = upstream_group(Script([(400, {})]), Script([(200, {})]))
    with pytest.raises(UserFacingError) as raised:
        client_for_group(GROUP).get("/v1/models")
    assert raised.value.code == code_of(up.names[0], "UNEXPECTED")
    assert up.requests() == [1, 0]
    record = ErrorRecord.objects.get(support_id=raised.value.support_id)
    assert (record.service, record.context["group"]) == (up.names[0], GROUP)


@pytest.mark.parametrize("status", [408, 429])
def test_a_timeout_or_rate_limit_answer_fails_over(upstream_group: Any, status: int) -> None:
    up = upstream_group(Script([(status, {})]), Script([(200, {})]))
    result = client_for_group(GROUP).get("/v1/models")
    assert result.provider == up.names[1]
    assert up.requests() == [1, 1]


def test_an_unreachable_provider_fails_over(upstream_group: Any, settings: Any) -> None:
    up = upstream_group(Script([(200, {})]), Script([(200, {})]))
    settings.PROVIDERS[up.names[0]]["base_url"] = "http://127.0.0.1:9"  # nothing listens
    result = client_for_group(GROUP).get("/v1/models")
    assert result.provider == up.names[1]
    assert result.tried[0].code == code_of(up.names[0], "NETWORK")
