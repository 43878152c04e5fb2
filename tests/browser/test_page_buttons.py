"""The buttons on one breaker's and one job's admin page, clicked in a real browser:
Force open with a reason, and Cancel on a job a real worker is running."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.management import call_command

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import Breaker, BreakerEvent
from jobs.actions import create_job
from tests.browser.conftest import SHOTS, log_in_as_ops
from tests.jobs.conftest import wait_status

pytestmark = pytest.mark.slow


def test_force_open_a_breaker_and_cancel_a_running_job_from_their_pages(
    page: Any, live_server: Any, start_worker: Any
) -> None:
    call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    start_worker()
    breaker("ocr-upstream").allows()
    running = create_job(kind="demo.sleep", payload={"seconds": 120})[0]
    wait_status(running.id, {"running"})
    base = live_server.url
    log_in_as_ops(page, base)

    row = Breaker.objects.get(name="ocr-upstream")
    page.goto(f"{base}/admin/breakers/breaker/{row.pk}/change/")
    assert page.is_disabled("#breaker-reset")  # closed: nothing to reset
    page.fill("#override_reason", "upstream returns garbage, vendor ticket 4411")
    page.click("#breaker-force_open")
    page.wait_for_selector("text=Force open: ocr-upstream")
    page.screenshot(path=str(SHOTS / "7-breaker-forced-open.png"), full_page=True)
    row.refresh_from_db()
    assert (row.state, row.override) == ("open", "forced_open")
    event = BreakerEvent.objects.get(breaker=row, kind="override")
    assert (event.actor, event.reason) == (
        "demo-ops",
        "upstream returns garbage, vendor ticket 4411",
    )
    assert page.is_disabled("#breaker-force_open") and page.is_enabled("#breaker-reset")

    page.goto(f"{base}/admin/jobs/job/{running.pk}/change/")
    assert page.is_disabled("#job-retry")
    page.click("#job-cancel")
    page.wait_for_selector(f"text=Cancel requested for job {running.pk} (stopping).")
    cancelled = wait_status(running.id, {"cancelled", "succeeded", "failed"}, seconds=10)
    assert (cancelled.status, cancelled.result) == ("cancelled", None)
    page.reload()
    assert page.is_disabled("#job-cancel") and page.is_disabled("#job-retry")
    page.screenshot(path=str(SHOTS / "8-job-cancelled-from-its-page.png"), full_page=True)
    assert cancelled.events.filter(actor="demo-ops").exists()
