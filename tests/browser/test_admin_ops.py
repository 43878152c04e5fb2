"""Ops at 3 a.m., in a real browser: Debian's chromium (headless) driven by Playwright.

Logs into the admin as demo-ops, opens the dashboard, resets an open breaker,
cancels a running job (a real worker runs it) and finds an error by pasting
its support UUID. Screenshots go to screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.management import call_command

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import Breaker
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.recording import record_error
from jobs.actions import create_job
from jobs.models import Job
from tests.breakers.conftest import fail
from tests.browser.conftest import SHOTS
from tests.jobs.conftest import wait_status

pytestmark = pytest.mark.slow


@pytest.mark.made_up_error_codes
def test_ops_reset_cancel_and_find_an_error(page: Any, live_server: Any, start_worker: Any) -> None:
    call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    start_worker()
    fail(breaker("ocr-upstream", failure_threshold=1), 1)
    running = create_job(kind="demo.sleep", payload={"seconds": 120})[0]
    wait_status(running.id, {"running"})
    error = InternalServerError("We could not read your file.", code="OCR_TIMEOUT_ERROR")
    record_error(error, service="ocr")

    base = live_server.url
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "demo-ops")
    page.fill("#id_password", "demo")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    page.click("#ops-dashboard-link")
    page.wait_for_url(f"{base}/admin/dashboard/")
    assert "breaker ocr-upstream is open" in page.inner_text("#problems")
    page.screenshot(path=str(SHOTS / "1-dashboard.png"), full_page=True)

    # Reset the open breaker from its row on the dashboard.
    row = page.locator("tr[data-breaker='ocr-upstream']")
    row.locator("input[name=reason]").fill("upstream recovered, verified by hand")
    row.locator("input[type=submit]").click()
    page.wait_for_selector("text=Breaker ocr-upstream reset")
    assert Breaker.objects.get(name="ocr-upstream").state == "closed"
    page.screenshot(path=str(SHOTS / "2-breaker-reset.png"), full_page=True)

    # Cancel the running job from the jobs list.
    page.goto(f"{base}/admin/jobs/job/?status__exact=running")
    page.check(f"input[name=_selected_action][value='{running.pk}']")
    page.select_option("select[name=action]", "cancel_jobs")
    page.click("button[name=index]")
    page.wait_for_selector("text=Cancel requested for 1")
    cancelled = wait_status(running.id, {"cancelled", "succeeded", "failed"}, seconds=10)
    assert (cancelled.status, cancelled.result) == ("cancelled", None)
    page.screenshot(path=str(SHOTS / "3-job-cancelled.png"), full_page=True)

    # Find the error by pasting what the customer read out.
    page.goto(f"{base}/admin/dashboard/")
    page.fill("#support-uuid", f"We could not read your file. (Reference: {error.support_id})")
    page.press("#support-uuid", "Enter")
    page.wait_for_selector(f"text=OCR_TIMEOUT_ERROR {error.support_id}")
    assert "We could not read your file." in page.content()
    page.screenshot(path=str(SHOTS / "4-error-found.png"), full_page=True)
    assert Job.objects.get(pk=running.pk).events.filter(actor="demo-ops").exists()
