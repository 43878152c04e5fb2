"""Tables shared by every process that makes outgoing calls."""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Sum
from django.db.models.functions import Now


class RetryBudgetBucketQuerySet(models.QuerySet["RetryBudgetBucket"]):
    def in_window(self, seconds: float) -> RetryBudgetBucketQuerySet:
        """Buckets that started within the last ``seconds`` (database clock)."""
        return self.filter(started_at__gt=Now() - timedelta(seconds=seconds))

    def totals_by_upstream(self) -> dict[str, dict[str, int]]:
        """First attempts, retries and refused retries summed per upstream."""
        rows = self.values("upstream").annotate(
            first_attempts_sum=Sum("first_attempts"),
            retries_sum=Sum("retries"),
            refused_sum=Sum("refused"),
        )
        return {
            row["upstream"]: {
                "first_attempts": row["first_attempts_sum"],
                "retries": row["retries_sum"],
                "refused": row["refused_sum"],
            }
            for row in rows.order_by("upstream")
        }


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
