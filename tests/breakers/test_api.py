from __future__ import annotations

from typing import Any

from django.contrib.admin.models import LogEntry

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import BreakerEvent
from tests.breakers.conftest import fail
from tests.errors.helpers import assert_envelope

BASE = "/api/v1/breakers/"


def test_everyone_in_a_group_reads_breakers(
    fresh_name: str, client_user: Any, support_user: Any, api_as: Any
) -> None:
    fail(breaker(fresh_name, failure_threshold=1), 1)
    listed = api_as(support_user).get(BASE).json()
    assert [b["name"] for b in listed] == [fresh_name]
    body = api_as(client_user).get(f"{BASE}{fresh_name}/").json()
    assert {
        "name",
        "state",
        "failures",
        "opened_at",
        "open_until",
        "generation",
        "override",
    } <= set(body)
    assert (body["state"], body["generation"], body["override"]) == ("open", 1, None)


def test_unknown_and_invalid_names(fresh_name: str, support_user: Any, api_as: Any) -> None:
    assert_envelope(api_as(support_user).get(f"{BASE}nope/"), 404, "BREAKER_NOT_FOUND")
    assert_envelope(api_as(support_user).get(f"{BASE}Bad%20Name/"), 400, "INVALID_BREAKER_NAME")


def test_ops_override_with_a_reason(fresh_name: str, ops_user: Any, api_as: Any) -> None:
    breaker(fresh_name).allows()
    api = api_as(ops_user)
    assert_envelope(
        api.post(f"{BASE}{fresh_name}/force-open/", {}, format="json"), 400, "INVALID_REQUEST"
    )
    response = api.post(
        f"{BASE}{fresh_name}/force-open/",
        {"reason": "vendor outage", "expires_in": 600},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "open"
    assert body["override"]["kind"] == "forced_open"
    assert body["override"]["by"] == ops_user.username
    assert body["override"]["reason"] == "vendor outage"
    assert body["override"]["expires_at"]
    assert (
        api.post(
            f"{BASE}{fresh_name}/disable/", {"reason": "let it through"}, format="json"
        ).json()["override"]["kind"]
        == "disabled"
    )
    reset = api.post(f"{BASE}{fresh_name}/reset/", {"reason": "resolved"}, format="json").json()
    assert (reset["state"], reset["override"]) == ("closed", None)
    assert_envelope(
        api.post(f"{BASE}{fresh_name}/reset/", {"reason": "x", "expires_in": 5}, format="json"),
        422,
        "INVALID_EXPIRY",
    )
    actors = set(
        BreakerEvent.objects.filter(breaker__name=fresh_name).values_list("actor", flat=True)
    )
    assert actors == {ops_user.username}
    assert LogEntry.objects.filter(user=ops_user).count() == 3


def test_only_ops_may_override(
    fresh_name: str, client_user: Any, support_user: Any, api_as: Any
) -> None:
    breaker(fresh_name).allows()
    for user in (client_user, support_user):
        response = api_as(user).post(f"{BASE}{fresh_name}/reset/", {"reason": "x"}, format="json")
        assert_envelope(response, 403, "PERMISSION_DENIED")
    assert not BreakerEvent.objects.exists()
