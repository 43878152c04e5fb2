from __future__ import annotations

from django.apps import AppConfig


class ResilienceConfig(AppConfig):
    """Outgoing calls: retry policy, the retry budget shared by every process, provider
    groups with failover and declared fallbacks. Its tables hold what must be shared."""

    name = "controlplane.resilience"
    label = "resilience"
    default_auto_field = "django.db.models.BigAutoField"
