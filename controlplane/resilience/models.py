"""Tables shared by every process that makes outgoing calls."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import models
from django.db.models import Q, Sum
from django.db.models.functions import Coalesce, Now


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


class RetryBudgetBucketQuerySet(models.QuerySet["RetryBudgetBucket"]):
    def in_window(self, seconds: float) -> RetryBudgetBucketQuerySet:
        """Buckets that started within the last ``seconds`` (database clock)."""
        return self.filter(started_at__gt=Now() - timedelta(seconds=seconds))

    def totals_by_upstream(
        self, *, refused_within: float | None = None
    ) -> dict[str, dict[str, int]]:
        """First attempts, retries and refused retries summed per upstream; with
        ``refused_within`` (seconds) also ``refused_recently``, the refusals of the buckets
        that started that recently (database clock). One query either way."""
        sums: dict[str, Any] = {
            "first_attempts_sum": Sum("first_attempts"),
            "retries_sum": Sum("retries"),
            "refused_sum": Sum("refused"),
        }
        if refused_within is not None:
            since = Now() - timedelta(seconds=refused_within)
            sums["recent_sum"] = Coalesce(Sum("refused", filter=Q(started_at__gt=since)), 0)
        totals = {}
        for row in self.values("upstream").annotate(**sums).order_by("upstream"):
            totals[row["upstream"]] = {
                "first_attempts": row["first_attempts_sum"],
                "retries": row["retries_sum"],
                "refused": row["refused_sum"],
            }
            if refused_within is not None:
                totals[row["upstream"]]["refused_recently"] = row["recent_sum"]
        return totals


class RetryBudgetBucket(models.Model):
    """One slice of an upstream's retry-budget window, summed over every process.

    Each upstream has a fixed ring of slots (``controlplane.resilience.budget.SLOTS``); a
    process's sync adds its counts to the slot of the current bucket (database clock) and
    restarts a slot whose bucket has gone by. So the table holds at most upstreams x slots
    rows and needs no clean-up job.
    """

    upstream = models.CharField(max_length=100)
    slot = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    first_attempts = models.BigIntegerField(default=0)
    retries = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(db_default=Now())

    objects = RetryBudgetBucketQuerySet.as_manager()

    class Meta:
        ordering = ["upstream", "slot"]
        constraints = [
            models.UniqueConstraint(fields=["upstream", "slot"], name="retrybudget_one_per_slot")
        ]

    def __str__(self) -> str:
        return f"{self.upstream} slot {self.slot} from {self.started_at:%H:%M:%S}"
