from __future__ import annotations

import uuid

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
