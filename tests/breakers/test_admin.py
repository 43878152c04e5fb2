from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError, transaction

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import Breaker, BreakerEvent
from tests.breakers.conftest import fail

CHANGELIST = "/admin/breakers/breaker/"


def test_ops_reset_a_breaker_with_a_reason(fresh_name: str, ops_user: Any, client: Any) -> None:
    fail(breaker(fresh_name, failure_threshold=1), 1)
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(ops_user)
    listing = client.get(CHANGELIST).content.decode()
    assert "breaker-open" in listing
    form = client.post(CHANGELIST, {"action": "reset_breakers", "_selected_action": [row.pk]})
    assert form.status_code == 200
    assert "reason" in form.content.decode()
    done = client.post(
        CHANGELIST,
        {
            "action": "reset_breakers",
            "_selected_action": [row.pk],
            "apply": "1",
            "reason": "upstream fixed at 03:10",
        },
        follow=True,
    )
    assert "Reset: " in done.content.decode()
    assert Breaker.objects.get(pk=row.pk).state == "closed"
    event = BreakerEvent.objects.filter(breaker=row, kind="override").get()
    assert (event.actor, event.reason) == (ops_user.username, "upstream fixed at 03:10")


def test_a_reset_without_reason_is_refused(fresh_name: str, ops_user: Any, client: Any) -> None:
    fail(breaker(fresh_name, failure_threshold=1), 1)
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(ops_user)
    page = client.post(
        CHANGELIST, {"action": "reset_breakers", "_selected_action": [row.pk], "apply": "1"}
    )
    assert page.status_code == 200
    assert "This field is required." in page.content.decode()  # the form again, with why
    assert Breaker.objects.get(pk=row.pk).state == "open"
    assert not BreakerEvent.objects.filter(breaker=row, kind="override").exists()


def test_support_can_see_but_not_act(fresh_name: str, support_user: Any, client: Any) -> None:
    fail(breaker(fresh_name, failure_threshold=1), 1)
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(support_user)
    page = client.get(CHANGELIST).content.decode()
    assert fresh_name in page
    assert "reset_breakers" not in page
    refused = client.post(
        CHANGELIST,
        {"action": "reset_breakers", "_selected_action": [row.pk], "apply": "1", "reason": "x"},
        follow=True,
    )
    # Support has no change permission: the post is answered with the view-only list.
    assert "Select breaker to view" in refused.content.decode()
    assert Breaker.objects.get(pk=row.pk).state == "open"
    assert not BreakerEvent.objects.filter(kind="override").exists()


def test_the_open_breakers_list(fresh_name: str, ops_user: Any, client: Any) -> None:
    fail(breaker(fresh_name, failure_threshold=1), 1)
    breaker(fresh_name + "-ok").allows()
    client.force_login(ops_user)
    page = client.get("/admin/breakers/openbreaker/").content.decode()
    assert fresh_name in page
    assert fresh_name + "-ok" not in page


def test_a_policy_that_would_wedge_a_breaker_is_refused(
    fresh_name: str, ops_user: Any, client: Any
) -> None:
    breaker(fresh_name).allows()
    row = Breaker.objects.get(name=fresh_name)
    client.force_login(ops_user)
    form = client.get(f"{CHANGELIST}{row.pk}/change/")
    editable = form.context["adminform"].form
    fields = {
        name: "" if value is None else value
        for name, value in editable.initial.items()
        if name in editable.fields
    }
    for field in ("half_open_max_probes", "failure_threshold"):
        page = client.post(f"{CHANGELIST}{row.pk}/change/", {**fields, field: 0})
        assert page.status_code == 200  # the form again, with the error
        assert "Ensure this value is greater than or equal to 1." in page.content.decode()
    row.refresh_from_db()
    assert (row.half_open_max_probes, row.failure_threshold) == (1, 5)
    with pytest.raises(IntegrityError), transaction.atomic():  # and however it is written
        Breaker.objects.filter(pk=row.pk).update(half_open_max_probes=0)
