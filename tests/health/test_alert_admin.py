"""Ops manage channels in the admin (the secret is write-only); events and deliveries are
read-only lists with filters."""

from __future__ import annotations

from typing import Any

from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.models import AlertChannel


def test_it_keeps_the_secret_write_only(db: Any, ops_user: Any, client: Any) -> None:
    client.force_login(ops_user)
    form = {
        "name": "pager",
        "kind": "webhook",
        "target": "https://hooks.example.com/pager",
        "enabled": "on",
        "max_per_hour": "30",
        "events": [],
        "new_secret": "very-secret-value",
    }
    response = client.post("/admin/health/alertchannel/add/", form)
    assert response.status_code == 302, response.content.decode()
    channel = AlertChannel.objects.get(name="pager")
    assert channel.secret == "very-secret-value"

    page = client.get(f"/admin/health/alertchannel/{channel.pk}/change/").content.decode()
    assert "very-secret-value" not in page
    client.post(
        f"/admin/health/alertchannel/{channel.pk}/change/", {**form, "new_secret": ""}
    )  # left empty: kept
    channel.refresh_from_db()
    assert channel.secret == "very-secret-value"
    listed = client.get("/admin/health/alertchannel/").content.decode()
    assert "very-secret-value" not in listed and "pager" in listed


def test_events_and_deliveries_render_with_filters(db: Any, ops_user: Any, client: Any) -> None:
    AlertChannel.objects.create(name="ops mail", kind="email", target="ops@example.com")
    raise_alert(Alert("breaker.opened", "llamaparse", "Breaker llamaparse opened", {}))
    client.force_login(ops_user)

    for path in (
        "/admin/health/alertevent/",
        "/admin/health/alertevent/?status__exact=firing&kind__exact=breaker.opened",
        "/admin/health/alertdelivery/",
        "/admin/health/alertdelivery/?status__exact=pending",
        "/admin/health/alertchannel/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
    events = client.get("/admin/health/alertevent/?status__exact=firing").content.decode()
    assert "Breaker llamaparse opened" in events
    deliveries = client.get("/admin/health/alertdelivery/").content.decode()
    assert "ops mail" in deliveries and "pending" in deliveries
    assert client.get("/admin/health/alertevent/add/").status_code == 403


def test_support_sees_events_but_cannot_edit_channels(
    db: Any, support_user: Any, client: Any
) -> None:
    client.force_login(support_user)
    assert client.get("/admin/health/alertevent/").status_code == 200
    assert client.get("/admin/health/alertchannel/").status_code == 403


SLACK = "https://bot:pw@hooks.slack.example.com/services/T000/B000/XXXXSECRETTOKEN?x=1"


def test_it_never_shows_a_webhook_url_in_full_and_keeps_it_editable(
    db: Any, ops_user: Any, client: Any
) -> None:
    channel = AlertChannel.objects.create(name="slack ops", kind="slack", target=SLACK)
    client.force_login(ops_user)

    listed = client.get("/admin/health/alertchannel/").content.decode()
    assert "https://hooks.slack.example.com/…" in listed
    change = f"/admin/health/alertchannel/{channel.pk}/change/"
    page = client.get(change).content.decode()
    for shown in (listed, page):
        assert (
            "XXXXSECRETTOKEN" not in shown and "bot:pw" not in shown and "/services/" not in shown
        )

    form = {"name": "slack ops", "kind": "slack", "target": "", "enabled": "on",
            "max_per_hour": "30", "events": []}  # fmt: skip
    assert client.post(change, form).status_code == 302  # left empty: the URL stays
    channel.refresh_from_db()
    assert channel.target == SLACK
    new = "https://hooks.slack.example.com/services/T1/B1/NEW"
    assert client.post(change, {**form, "target": new}).status_code == 302
    channel.refresh_from_db()
    assert channel.target == new


def test_it_refuses_targets_that_cannot_be_delivered_to(
    db: Any, ops_user: Any, client: Any
) -> None:
    client.force_login(ops_user)
    form = {"name": "bad", "enabled": "on", "max_per_hour": "30", "events": []}
    for kind, target in (
        ("webhook", "ftp://hooks.example.com/x"),
        ("slack", "hooks.example.com/no-scheme"),
        ("webhook", "http://"),
        ("email", "ops@example.com, not an address"),
        ("email", " , "),
    ):
        response = client.post(
            "/admin/health/alertchannel/add/", {**form, "kind": kind, "target": target}
        )
        assert response.status_code == 200, (kind, target)  # the form again, with the error
        assert "errorlist" in response.content.decode(), (kind, target)
    assert not AlertChannel.objects.filter(name="bad").exists()
