"""Tables shared by every process that makes outgoing calls."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models.functions import Now


class LastGoodQuerySet(models.QuerySet["LastGoodResponse"]):
    def young(
        self, group: str, request_key: str, max_age_seconds: float
    ) -> LastGoodResponse | None:
        """The group's last good answer to this request if stored less than
        ``max_age_seconds`` ago, with its ``age`` (a timedelta), both by the database clock:
        every process wrote it with the same clock."""
        return (
            self.filter(
                group_name=group,
                request_key=request_key,
                stored_at__gt=Now() - timedelta(seconds=max_age_seconds),
            )
            .annotate(age=Now() - models.F("stored_at"))
            .first()
        )


class LastGoodResponse(models.Model):
    """The last 2xx answer a provider group gave to one request (method, path, body hash),
    kept for the group's ``last_good`` fallback. Written in the background by
    ``controlplane.resilience.last_good`` (bounded: LAST_GOOD_MAX_BODY_BYTES per body,
    LAST_GOOD_MAX_ROWS per group, oldest evicted)."""

    group_name = models.CharField(max_length=100)
    request_key = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=2000)
    status = models.PositiveSmallIntegerField()
    content_type = models.CharField(max_length=200, blank=True)
    body = models.BinaryField()
    provider = models.CharField(max_length=100)
    stored_at = models.DateTimeField(db_default=Now())

    objects = LastGoodQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["group_name", "request_key"], name="last_good_one_per_request"
            )
        ]
        # Eviction walks a group's rows newest first.
        indexes = [models.Index(fields=["group_name", "-stored_at"], name="last_good_by_age")]

    def __str__(self) -> str:
        return f"{self.group_name}: {self.method} {self.path} ({self.status})"
