from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class ProviderCheck(models.Model):
    """One probe of an upstream provider; the newest per provider is its current health."""

    HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
    STATUSES = [(HEALTHY, HEALTHY), (DEGRADED, DEGRADED), (UNHEALTHY, UNHEALTHY)]

    provider = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=STATUSES)
    latency_ms = models.FloatField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    checked_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["provider", "-checked_at"], name="providercheck_latest")]

    def __str__(self) -> str:
        return f"{self.provider}: {self.status}"
