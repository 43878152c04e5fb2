"""Shared by the browser tests: Debian's chromium (headless) driven by Playwright, and a
login as demo-ops. Screenshots go to screenshots/ (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.jobs.conftest import clean_jobs, start_worker  # noqa: F401 -- shared fixtures

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = REPO / "screenshots"


@pytest.fixture
def page(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            "Debian's chromium is needed for the admin browser test: apt-get install chromium "
            "(`make test` installs it when run as root)."
        )
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # are plain synchronous code (Django documents this switch for such cases).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def log_in_as_ops(page: Any, base: str) -> None:
    """demo-ops (from load_demo) logs into the admin."""
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "demo-ops")
    page.fill("#id_password", "demo")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
