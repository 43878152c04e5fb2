"""The ops dashboard in a real browser: it draws the 24 h breaker timeline and refreshes
its panels without a reload (a marker set on the page survives the change showing up),
pauses on request (remembered across reloads), and says it is stale when a refresh fails
instead of blanking."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import Breaker
from tests.breakers.conftest import fail
from tests.browser.conftest import SHOTS, log_in_as_ops

pytestmark = pytest.mark.slow
PANELS = "**/admin/dashboard/panels/"


def row(name: str, state: str) -> str:
    return f"g.timeline-row[data-breaker='{name}'][data-state='{state}']"


def yesterday_outage(name: str) -> None:
    """History for the timeline: opened 6 h ago, half-open, open again, closed 5 h ago."""
    breaker(name).allows()
    steps = [(6.0, "closed", "open"), (5.8, "open", "half_open"), (5.7, "half_open", "open")]
    steps.append((5.0, "open", "closed"))
    with connection.cursor() as cursor:
        for generation, (hours, from_state, to_state) in enumerate(steps, start=1):
            cursor.execute(
                "INSERT INTO breakers_breakerevent (breaker_id, generation, kind, from_state,"
                " to_state, reason, actor, details, created_at) SELECT id, %s, 'transition',"
                " %s, %s, '', '', '{}', now() - %s FROM breakers_breaker WHERE name = %s",
                [generation, from_state, to_state, timedelta(hours=hours), name],
            )
        cursor.execute("UPDATE breakers_breaker SET generation = 4 WHERE name = %s", [name])


def test_the_dashboard_draws_the_timeline_and_refreshes_without_a_reload(
    page: Any, live_server: Any, settings: Any
) -> None:
    settings.DASHBOARD_REFRESH_SECONDS = 2  # the live server runs in this process
    call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    yesterday_outage("llm-upstream")
    fail(breaker("ocr-upstream", failure_threshold=1), 1)
    ops = Breaker.objects.get(name="ocr-upstream")
    base = live_server.url
    log_in_as_ops(page, base)
    page.goto(f"{base}/admin/dashboard/")
    page.wait_for_selector(row("ocr-upstream", "open"))
    assert page.locator(row("llm-upstream", "closed")).count() == 1
    assert (
        page.locator("g.timeline-row[data-breaker='llm-upstream'] rect.segment-open").count() == 2
    )
    page.locator("#timeline").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "5-dashboard-timeline.png"), full_page=True)

    # Refreshed in place: the page's own state survives, the new breaker state shows up.
    page.evaluate("window.__marker = 1")
    first_update = page.inner_text("#dashboard-updated")
    override_breaker(name="ocr-upstream", action="reset", reason="verified", actor=None)
    page.wait_for_selector(row("ocr-upstream", "closed"))
    assert page.evaluate("window.__marker") == 1
    assert page.inner_text("#dashboard-updated") != first_update
    assert "verified" in page.inner_text("#overrides")

    # Paused: remembered across a reload; nothing changes until Resume.
    page.click("#dashboard-pause")
    assert page.inner_text("#dashboard-pause") == "Resume"
    page.reload()
    assert page.inner_text("#dashboard-pause") == "Resume"
    page.evaluate("window.__marker = 2")
    override_breaker(name="ocr-upstream", action="force_open", reason="paused?", actor=None)
    page.wait_for_timeout(3 * 2000)  # three refresh intervals: a live page would have swapped
    assert page.locator(row("ocr-upstream", "closed")).count() == 1
    page.click("#dashboard-pause")
    page.wait_for_selector(row("ocr-upstream", "forced_open"))
    assert page.evaluate("window.__marker") == 2

    # A failed refresh keeps the panels and says they are stale; the next good one clears it.
    page.route(PANELS, lambda route: route.abort())
    page.wait_for_selector("#dashboard-refresh.stale")
    assert "stale" in page.inner_text("#dashboard-updated")
    assert page.locator(row("ocr-upstream", "forced_open")).count() == 1  # not blanked
    page.screenshot(path=str(SHOTS / "6-dashboard-stale.png"), full_page=True)
    page.unroute(PANELS)
    page.wait_for_selector("#dashboard-refresh:not(.stale)")
    assert page.evaluate("window.__marker") == 2
    assert ops.pk == Breaker.objects.get(name="ocr-upstream").pk
