"""The dashboard refreshes itself: the page names its panels URL and interval, and that URL
answers the panels alone, fresh, to admin users only."""

from __future__ import annotations

from typing import Any

from django.test import Client

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.circuit import breaker
from tests.breakers.conftest import fail, fresh_name  # noqa: F401

PAGE, PANELS = "/admin/dashboard/", "/admin/dashboard/panels/"


def test_the_page_names_its_panels_url_and_interval(
    db: Any, ops_user: Any, client: Any, settings: Any
) -> None:
    settings.DASHBOARD_REFRESH_SECONDS = 7
    client.force_login(ops_user)
    page = client.get(PAGE).content.decode()
    assert f'data-url="{PANELS}" data-refresh-seconds="7"' in page
    assert 'id="dashboard-pause"' in page and 'id="dashboard-updated"' in page
    assert "health/dashboard.js" in page
    assert "<script>" not in page.split('id="dashboard-panels"', 1)[1]  # no inline script


def test_the_panels_url_answers_the_panels_alone_and_uncached(
    db: Any, ops_user: Any, client: Any
) -> None:
    client.force_login(ops_user)
    response = client.get(PANELS)
    body = response.content.decode()
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert 'id="problems"' in body and 'id="timeline"' in body and 'id="overrides"' in body
    assert "data-refreshed-at=" in body
    assert "<html" not in body and 'id="dashboard-pause"' not in body  # no page around it


def test_the_panels_need_an_admin_login(db: Any, client_user: Any) -> None:
    anonymous = Client().get(PANELS)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    not_staff = Client()
    not_staff.force_login(client_user)
    refused = not_staff.get(PANELS)
    assert refused.status_code == 302 and "/admin/login/" in refused["Location"]


def test_the_panels_show_a_change_made_after_the_page_loaded(
    fresh_name: str,  # noqa: F811 -- empty breaker tables, transactional
    ops_user: Any,
    client: Any,
) -> None:
    client.force_login(ops_user)
    fail(breaker(fresh_name, failure_threshold=1), 1)
    before = client.get(PANELS).content.decode()
    assert f'data-breaker="{fresh_name}" data-state="open"' in before
    override_breaker(name=fresh_name, action="reset", reason="fixed upstream", actor=ops_user)
    after = client.get(PANELS).content.decode()
    assert f'data-breaker="{fresh_name}" data-state="closed"' in after
    overrides = after.split('id="overrides"', 1)[1].split("</section>", 1)[0]
    assert fresh_name in overrides and "olga-ops" in overrides and "fixed upstream" in overrides
