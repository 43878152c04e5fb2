"""The ops dashboard lists the alerts firing now, and not the resolved ones."""

from __future__ import annotations

from typing import Any

from controlplane.health.alerts import Alert, raise_alert, resolve


def test_it_lists_the_alerts_firing_now(db: Any, ops_user: Any, client: Any) -> None:
    raise_alert(Alert("provider.unhealthy", "ocr", "Provider ocr is unhealthy (HTTP 503)"))
    raise_alert(Alert("breaker.opened", "billing", "Breaker billing opened", {}))
    resolve("billing", ["breaker.opened"])
    client.force_login(ops_user)

    page = client.get("/admin/dashboard/").content.decode()
    panel = page.split('id="firing-alerts"', 1)[1].split("</section>", 1)[0]
    assert "Provider ocr is unhealthy (HTTP 503)" in panel
    assert "Breaker billing opened" not in panel


def test_it_says_when_nothing_fires(db: Any, ops_user: Any, client: Any) -> None:
    client.force_login(ops_user)
    page = client.get("/admin/dashboard/").content.decode()
    panel = page.split('id="firing-alerts"', 1)[1].split("</section>", 1)[0]
    assert ": none." in panel
