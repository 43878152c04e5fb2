"""Remote clients' breakers: created on first report, owned by that client, probed with a
permit; this service's own breakers and other clients' are not theirs to drive."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import Breaker
from tests.breakers.conftest import elapse_cooldown, execute
from tests.errors.helpers import assert_envelope

BASE = "/api/v1/breakers/"


def report(api: Any, name: str, outcome: str, **extra: Any) -> Any:
    return api.post(f"{BASE}{name}/outcomes/", {"outcome": outcome, **extra}, format="json")


def test_remote_outcomes_create_a_breaker_the_client_owns_and_trip_it(
    fresh_name: str, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.BREAKER_DEFAULTS = {**settings.BREAKER_DEFAULTS, "failure_threshold": 2}
    api = api_as(client_user)
    first = report(api, fresh_name, "failure")
    assert first.status_code == 200
    assert first.json()["failures"] == 1
    assert Breaker.objects.get(name=fresh_name).owner == client_user
    report(api, fresh_name, "failure", duration_ms=12)
    assert Breaker.objects.get(name=fresh_name).state == "open"
    assert_envelope(report(api, fresh_name, "meh"), 400, "INVALID_REQUEST")


def test_a_half_open_permit_carries_the_probe_that_decides(
    fresh_name: str, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    report(api, fresh_name, "success")  # created, the client's
    execute(
        "UPDATE breakers_breaker SET failure_threshold = 1, half_open_max_probes = 1"
        " WHERE name = %s",
        [fresh_name],
    )
    report(api, fresh_name, "failure")
    refused = api.get(f"{BASE}{fresh_name}/permit/").json()
    assert (refused["allowed"], refused["state"], refused["probe"]) == (False, "open", None)
    assert 0 < refused["retry_after"] <= 60
    elapse_cooldown(fresh_name)
    granted = api.get(f"{BASE}{fresh_name}/permit/").json()
    assert (granted["allowed"], granted["state"], granted["retry_after"]) == (
        True,
        "half_open",
        None,
    )
    assert granted["probe"]
    assert api.get(f"{BASE}{fresh_name}/permit/").json()["allowed"] is False  # slot taken
    # Without the probe a report decides nothing, whatever it says.
    for outcome in ("success", "failure"):
        assert_envelope(report(api, fresh_name, outcome), 409, "PROBE_REQUIRED")
    assert Breaker.objects.get(name=fresh_name).state == "half_open"
    assert report(api, fresh_name, "success", probe=granted["probe"]).status_code == 200
    assert Breaker.objects.get(name=fresh_name).state == "closed"


def test_another_clients_breaker_is_not_yours(
    fresh_name: str, client_user: Any, api_as: Any, django_user_model: Any
) -> None:
    other = django_user_model.objects.create_user("carol-client")
    other.groups.add(Group.objects.get(name="clients"))
    report(api_as(client_user), fresh_name, "success")
    theirs = api_as(other)
    for _ in range(5):
        assert_envelope(report(theirs, fresh_name, "failure"), 403, "BREAKER_NOT_OWNED")
    assert_envelope(theirs.get(f"{BASE}{fresh_name}/permit/"), 403, "BREAKER_NOT_OWNED")
    row = Breaker.objects.get(name=fresh_name)
    assert (row.state, row.total_failures, row.probe_leases) == ("closed", 0, [])


def test_this_services_own_breakers_are_nobodys(
    fresh_name: str, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.PROVIDERS = {"openai": {"mode": "mock"}}
    breaker(fresh_name).allows()  # created by this service's code: no owner
    api = api_as(client_user)
    for name in ("lookups-db", "openai", fresh_name):
        assert_envelope(report(api, name, "failure"), 403, "BREAKER_RESERVED")
        assert_envelope(api.get(f"{BASE}{name}/permit/"), 403, "BREAKER_RESERVED")
    assert Breaker.objects.get(name=fresh_name).total_failures == 0


def test_a_name_with_a_trailing_newline_is_refused(
    fresh_name: str, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    for name in ("lookups-db%0A", f"{fresh_name}%0A"):
        assert_envelope(report(api, name, "failure"), 400, "INVALID_BREAKER_NAME")
        assert_envelope(api.get(f"{BASE}{name}/permit/"), 400, "INVALID_BREAKER_NAME")
    assert not Breaker.objects.exists()


def test_a_client_creates_at_most_its_quota_of_breakers(
    fresh_name: str, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.BREAKER_MAX_PER_CLIENT = 3
    api = api_as(client_user)
    for n in range(3):
        assert report(api, f"{fresh_name}-{n}", "success").status_code == 200
    over = report(api, f"{fresh_name}-3", "success")
    assert_envelope(over, 403, "BREAKER_LIMIT_REACHED")
    assert over.json()["error"]["metadata"] == {"limit": 3}
    assert Breaker.objects.filter(owner=client_user).count() == 3
    assert report(api, f"{fresh_name}-0", "failure").status_code == 200  # its own still work
