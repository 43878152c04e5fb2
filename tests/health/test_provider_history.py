"""The dashboard's provider health history: per configured provider, 15-minute cells
coloured by the worst probe in each, over 24 h."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection

from controlplane.health.models import ProviderCheck
from controlplane.health.provider_history import CELLS, NO_CHECKS, provider_strips


def test_each_cell_shows_the_worst_probe_in_it(db: Any, settings: Any) -> None:
    settings.PROVIDERS = {"hist-ocr": {"mode": "mock"}, "hist-llm": {"mode": "mock"}}
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
    start = now - timedelta(hours=24)
    for minutes, status in ((1, "healthy"), (2, "unhealthy"), (3, "degraded"), (20, "degraded")):
        ProviderCheck.objects.create(
            provider="hist-ocr", status=status, checked_at=start + timedelta(minutes=minutes)
        )
    ProviderCheck.objects.create(  # before the window: not drawn
        provider="hist-llm", status="unhealthy", checked_at=start - timedelta(minutes=1)
    )
    ProviderCheck.objects.create(provider="hist-unconfigured", status="unhealthy")

    strips = provider_strips(now=now)
    assert [s["provider"] for s in strips] == ["hist-llm", "hist-ocr"]
    llm, ocr = strips
    assert len(ocr["cells"]) == CELLS
    assert [c["status"] for c in ocr["cells"][:3]] == ["unhealthy", "degraded", NO_CHECKS]
    assert "(2 of 3 checks not healthy)" in ocr["cells"][0]["title"]
    assert {c["status"] for c in ocr["cells"][2:]} == {NO_CHECKS}
    assert {c["status"] for c in llm["cells"]} == {NO_CHECKS}


def test_the_dashboard_draws_a_strip_per_provider(
    db: Any, settings: Any, ops_user: Any, client: Any
) -> None:
    settings.PROVIDERS = {"hist-ocr": {"mode": "mock"}}
    ProviderCheck.objects.create(provider="hist-ocr", status="unhealthy")
    client.force_login(ops_user)
    page = client.get("/admin/dashboard/").content.decode()
    strip = page.split('data-provider="hist-ocr"', 1)[1].split("</svg>", 1)[0]
    assert strip.count("<rect") == CELLS
    assert strip.count('data-status="unhealthy"') == 1
