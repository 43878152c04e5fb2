"""Provider probes: GET each provider's health path, record healthy / degraded / unhealthy."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
from django.conf import settings
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from controlplane.health.models import ProviderCheck


def probe(name: str, config: dict[str, Any]) -> ProviderCheck:
    if config.get("mode", "real") == "mock":
        return ProviderCheck.objects.create(
            provider=name, status=ProviderCheck.HEALTHY, latency_ms=0, detail="mock provider"
        )
    url = config.get("base_url", "").rstrip("/") + config.get("health_path", "/health")
    started = time.perf_counter()
    try:
        response = httpx.get(url, timeout=settings.PROVIDER_HEALTH_TIMEOUT)
    except httpx.HTTPError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return ProviderCheck.objects.create(
            provider=name,
            status=ProviderCheck.UNHEALTHY,
            latency_ms=round(elapsed, 1),
            detail=f"{type(exc).__name__}",
        )
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code >= 400:
        status, detail = ProviderCheck.UNHEALTHY, f"HTTP {response.status_code}"
    elif elapsed > settings.PROVIDER_HEALTH_SLOW_MS:
        status, detail = ProviderCheck.DEGRADED, f"slow: {elapsed:.0f} ms"
    else:
        status, detail = ProviderCheck.HEALTHY, f"HTTP {response.status_code}"
    return ProviderCheck.objects.create(
        provider=name, status=status, latency_ms=round(elapsed, 1), detail=detail
    )


def probe_all() -> dict[str, str]:
    from controlplane.health.alert_sources import provider_alerts  # it imports the models

    checks = {name: probe(name, config) for name, config in settings.PROVIDERS.items()}
    results = {name: check.status for name, check in checks.items()}
    provider_alerts(results, {name: check.detail for name, check in checks.items()})
    cutoff = timezone.now() - timedelta(days=settings.PROVIDER_HEALTH_HISTORY_DAYS)
    ProviderCheck.objects.filter(checked_at__lt=cutoff).delete()
    return results


def latest_statuses() -> dict[str, str]:
    """Each configured provider's latest status (what provider failover orders by)."""
    return {name: check.status for name, check in latest().items()}


def latest() -> dict[str, ProviderCheck]:
    """The newest check of every configured provider (one indexed lookup each)."""
    newest = ProviderCheck.objects.filter(provider=OuterRef("provider")).order_by("-checked_at")
    rows = ProviderCheck.objects.filter(
        provider__in=list(settings.PROVIDERS), pk=Subquery(newest.values("pk")[:1])
    )
    return {row.provider: row for row in rows}
