from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Now

SLUG_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
SLUG_MAX_LENGTH = 100
slug_validator = RegexValidator(
    SLUG_PATTERN, "Use lowercase letters, digits and single hyphens (e.g. wall-painting)."
)


class MicroService(models.Model):
    """A micro-service clients name by slug and downstream systems know by UUID."""

    slug = models.CharField(max_length=SLUG_MAX_LENGTH, unique=True, validators=[slug_validator])
    uuid = models.UUIDField(unique=True, default=uuid.uuid4)
    name = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["slug"]
        verbose_name = "micro-service"

    def __str__(self) -> str:
        return self.slug


class WarmReport(models.Model):
    """One row per process that answered a cache-warm broadcast."""

    request_id = models.UUIDField(db_index=True)
    process = models.CharField(max_length=200)
    warmed = models.PositiveIntegerField()
    # On the asking process's own report: the slugs asked for (null: the newest). The
    # NOTIFY carries only the request id: its payload is limited to 8,000 bytes.
    slugs = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["process"]

    def __str__(self) -> str:
        return f"{self.process}: {self.warmed}"


class ProcessStats(models.Model):
    """Each process's lookup metrics, written every few seconds, aggregated by the stats page."""

    process = models.CharField(max_length=200, unique=True)
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        verbose_name_plural = "process stats"

    def __str__(self) -> str:
        return self.process


class SlugStats(models.Model):
    """Per-slug lookup figures summed over every process, flushed with the process stats.

    Bounded: slugs a client invents land here too, so the table keeps at most
    LOOKUP_SLUG_STATS_MAX rows (those looked up within a day first, the busiest among them;
    ``lookups.slug_counts.flush``) and drops slugs not seen for
    LOOKUP_SLUG_STATS_RETENTION_DAYS (the daily purge)."""

    slug = models.CharField(max_length=SLUG_MAX_LENGTH, unique=True)
    hits = models.BigIntegerField(default=0)
    misses = models.BigIntegerField(default=0)
    fallbacks = models.BigIntegerField(default=0)
    last_seen = models.DateTimeField(db_default=Now(), db_index=True)

    class Meta:
        verbose_name = "slug lookup figures"
        verbose_name_plural = "slug lookup figures"

    def __str__(self) -> str:
        return self.slug


class CacheClear(models.Model):
    """The audit row of one "clear the lookup cache in every process" (who, how, when),
    written in the transaction that broadcasts the clear."""

    request_id = models.UUIDField(unique=True, default=uuid.uuid4)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # Kept when the user is deleted: the audit still says who.
    requested_by_name = models.CharField(max_length=150)
    via = models.CharField(max_length=10, choices=[("admin", "admin"), ("api", "API")])
    created_at = models.DateTimeField(db_default=Now(), db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "lookup cache clear"

    def __str__(self) -> str:
        return f"{self.requested_by_name} via {self.via} ({self.request_id})"


class ClearReport(models.Model):
    """One row per process that cleared its lookup cache for a CacheClear."""

    clear = models.ForeignKey(CacheClear, on_delete=models.CASCADE, related_name="reports")
    process = models.CharField(max_length=200)
    cleared = models.PositiveIntegerField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["process"]

    def __str__(self) -> str:
        return f"{self.process}: {self.cleared}"
