"""A provider going unhealthy fires once; its recovery resolves it and says so."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.health.models import AlertEvent
from controlplane.health.probes import probe_all


def test_it_fires_when_a_provider_goes_unhealthy_and_tells_when_it_recovers(
    db: Any, settings: Any, receiver: Any
) -> None:
    url, script = receiver(503, 503, 200)
    provider = f"ocr-{uuid.uuid4().hex[:8]}"  # events of other tests' providers stay apart
    settings.PROVIDERS = {provider: {"mode": "real", "base_url": url, "health_path": "/health"}}

    def events() -> list[tuple[str, str]]:
        mine = AlertEvent.objects.filter(subject=provider).order_by("id")
        return list(mine.values_list("kind", "status"))

    probe_all()
    probe_all()  # still unhealthy: the same episode
    assert events() == [("provider.unhealthy", "firing")]
    assert "HTTP 503" in AlertEvent.objects.get(subject=provider).summary

    probe_all()
    probe_all()  # healthy again: told once
    assert events() == [("provider.unhealthy", "resolved"), ("provider.recovered", "notice")]
    assert len(script.seen) == 4
