"""Reset, Force open and Disable as buttons on one breaker's admin page: each needs a
reason, calls override_breaker (BreakerEvent with who and why, and a LogEntry), ops only."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.models import LogEntry
from django.test import Client

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import Breaker, BreakerEvent
from tests.breakers.conftest import fail

BREAKERS = "/admin/breakers/breaker/"


def test_ops_force_open_a_breaker_from_its_page(
    fresh_name: str, ops_user: Any, client: Any
) -> None:
    breaker(fresh_name).allows()
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(ops_user)
    page = client.get(f"{BREAKERS}{row.pk}/change/").content.decode()
    assert 'id="breaker-reset"\n      disabled' in page  # closed: a reset would change nothing
    assert 'id="breaker-force_open"\n      >' in page
    response = client.post(
        f"{BREAKERS}{row.pk}/override/",
        {"override": "force_open", "reason": "upstream is corrupting files", "expires_in": "600"},
    )
    assert (response.status_code, response["Location"]) == (302, f"{BREAKERS}{row.pk}/change/")
    shown = client.get(response["Location"]).content.decode()
    assert f"Force open: {fresh_name}. Every process follows within a second." in shown
    row.refresh_from_db()
    assert (row.override, row.override_by) == ("forced_open", ops_user.username)
    assert row.override_expires_at is not None
    event = BreakerEvent.objects.get(breaker=row, kind="override")
    assert (event.actor, event.reason, event.details) == (
        ops_user.username,
        "upstream is corrupting files",
        {"action": "force_open"},
    )
    entry = LogEntry.objects.get(object_id=str(row.pk))
    assert entry.user_id == ops_user.pk
    assert entry.change_message == "force open: upstream is corrupting files (expires in 600 s)"


def test_reset_and_disable_from_the_page(fresh_name: str, ops_user: Any, client: Any) -> None:
    fail(breaker(fresh_name, failure_threshold=1), 1)
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(ops_user)
    client.post(f"{BREAKERS}{row.pk}/override/", {"override": "reset", "reason": "fixed"})
    row.refresh_from_db()
    assert (row.state, row.override) == ("closed", "")
    client.post(f"{BREAKERS}{row.pk}/override/", {"override": "disable", "reason": "noisy"})
    row.refresh_from_db()
    assert row.override == "disabled"
    assert list(
        BreakerEvent.objects.filter(breaker=row, kind="override")
        .order_by("created_at", "id")
        .values_list("details__action", "reason")
    ) == [("reset", "fixed"), ("disable", "noisy")]


def test_no_reason_no_override(fresh_name: str, ops_user: Any, client: Any) -> None:
    fail(breaker(fresh_name, failure_threshold=1), 1)
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(ops_user)
    page = client.get(f"{BREAKERS}{row.pk}/change/").content.decode()
    assert 'name="reason" id="override_reason"' in page and "required" in page
    shown = client.post(
        f"{BREAKERS}{row.pk}/override/", {"override": "reset", "reason": "  "}, follow=True
    ).content.decode()
    assert "Reset not done (reason: This field is required.)" in shown
    unknown = client.post(
        f"{BREAKERS}{row.pk}/override/", {"override": "explode", "reason": "x"}, follow=True
    ).content.decode()
    assert "Choose Reset, Force open or Disable." in unknown
    assert Breaker.objects.get(pk=row.pk).state == "open"
    assert not BreakerEvent.objects.filter(kind="override").exists()
    assert not LogEntry.objects.filter(object_id=str(row.pk)).exists()


def test_support_sees_no_buttons_and_is_refused(
    fresh_name: str, support_user: Any, client: Any
) -> None:
    fail(breaker(fresh_name, failure_threshold=1), 1)
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(support_user)
    page = client.get(f"{BREAKERS}{row.pk}/change/").content.decode()
    assert 'id="breaker-override"' not in page and 'id="override_reason"' not in page
    refused = client.post(f"{BREAKERS}{row.pk}/override/", {"override": "reset", "reason": "x"})
    assert refused.status_code == 403
    assert Breaker.objects.get(pk=row.pk).state == "open"
    assert not BreakerEvent.objects.filter(kind="override").exists()


def test_the_override_needs_post_and_a_csrf_token(
    fresh_name: str, ops_user: Any, client: Any
) -> None:
    breaker(fresh_name).allows()
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(ops_user)
    assert client.get(f"{BREAKERS}{row.pk}/override/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(ops_user)
    posted = strict.post(f"{BREAKERS}{row.pk}/override/", {"override": "disable", "reason": "x"})
    assert posted.status_code == 403
    assert not BreakerEvent.objects.filter(kind="override").exists()


def test_an_open_breakers_page_has_the_buttons(fresh_name: str, ops_user: Any, client: Any) -> None:
    fail(breaker(fresh_name, failure_threshold=1), 1)
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(ops_user)
    url = f"/admin/breakers/openbreaker/{row.pk}/"
    page = client.get(f"{url}change/").content.decode()
    assert f'action="{url}override/"' in page
    response = client.post(f"{url}override/", {"override": "reset", "reason": "recovered"})
    assert response["Location"] == f"{BREAKERS}{row.pk}/change/"  # no longer an open one
    assert Breaker.objects.get(pk=row.pk).state == "closed"
