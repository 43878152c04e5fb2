from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Now

from controlplane.breakers.snapshot import effective_state


class BreakerState(models.TextChoices):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class TripPolicy(models.TextChoices):
    CONSECUTIVE = "consecutive", "consecutive failures"
    WINDOW = "window", "failures within a sliding window"


class Override(models.TextChoices):
    NONE = "", "none"
    FORCED_OPEN = "forced_open", "forced open"
    DISABLED = "disabled", "disabled (always permit)"


_AT_LEAST_ONE = MinValueValidator(1)


class BreakerQuerySet(models.QuerySet["Breaker"]):
    def not_closed(self) -> BreakerQuerySet:
        """Breakers that are open, half-open or under an override (forced open, disabled)."""
        return self.exclude(state=BreakerState.CLOSED, override=Override.NONE)

    def service_first(self) -> BreakerQuerySet:
        """This service's own upstreams (no owner) before clients' breakers, then by name."""
        return self.order_by(models.F("owner").asc(nulls_first=True), "name")


class Breaker(models.Model):
    """A circuit breaker shared by every process through this row.

    Every state change is one conditional UPDATE on (state, generation) made by
    ``controlplane.breakers.sql``; the generation increases on each
    transition, so results from an older generation are ignored.
    """

    name = models.CharField(max_length=100, unique=True)
    # The client that created it through the API (or that ops gave it to); none: a breaker
    # of this service's own code, which no client may report on or probe.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="The API client whose breaker this is; empty for this service's upstreams.",
    )
    state = models.CharField(
        max_length=10, choices=BreakerState.choices, default=BreakerState.CLOSED
    )
    generation = models.BigIntegerField(default=0)

    # Policy (defaults from settings when the breaker is created; editable in the admin)
    policy = models.CharField(
        max_length=12, choices=TripPolicy.choices, default=TripPolicy.CONSECUTIVE
    )
    failure_threshold = models.PositiveIntegerField(default=5, validators=[_AT_LEAST_ONE])
    window_seconds = models.PositiveIntegerField(default=300, validators=[_AT_LEAST_ONE])
    failure_rate_threshold = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Also trip when this share of calls fail (0-1).",
    )
    minimum_calls = models.PositiveIntegerField(default=20, validators=[_AT_LEAST_ONE])
    cooldown_seconds = models.FloatField(default=60, validators=[MinValueValidator(0.0)])
    cooldown_growth = models.FloatField(
        default=1.0, validators=[MinValueValidator(1.0)], help_text="Multiplier per repeated trip."
    )
    max_cooldown_seconds = models.FloatField(default=600, validators=[MinValueValidator(0.0)])
    half_open_max_probes = models.PositiveIntegerField(default=1, validators=[_AT_LEAST_ONE])
    half_open_successes = models.PositiveIntegerField(
        default=1, validators=[_AT_LEAST_ONE], help_text="Probe successes needed to close."
    )
    probe_lease_seconds = models.FloatField(default=30, validators=[MinValueValidator(0.1)])
    fail_open = models.BooleanField(
        default=True, help_text="When the database is unreachable: permit (True) or refuse."
    )

    # Counters
    consecutive_failures = models.PositiveIntegerField(default=0)
    failure_times = ArrayField(models.DateTimeField(), default=list, blank=True)
    rate_window_started_at = models.DateTimeField(null=True, blank=True)
    rate_calls = models.PositiveIntegerField(default=0)
    rate_failures = models.PositiveIntegerField(default=0)
    total_failures = models.BigIntegerField(default=0)
    reopen_count = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    open_until = models.DateTimeField(null=True, blank=True)
    probe_leases = ArrayField(models.DateTimeField(), default=list, blank=True)
    probe_successes = models.PositiveIntegerField(default=0)

    # Manual override
    override = models.CharField(max_length=12, choices=Override.choices, default="", blank=True)
    override_by = models.CharField(max_length=150, blank=True)
    override_reason = models.TextField(blank=True)
    override_at = models.DateTimeField(null=True, blank=True)
    override_expires_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    objects = BreakerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            # A threshold or probe count of 0 would wedge the breaker (never trips, or
            # half-open refusing everything): the database refuses it however it is written.
            models.CheckConstraint(
                condition=models.Q(
                    failure_threshold__gte=1,
                    window_seconds__gte=1,
                    minimum_calls__gte=1,
                    half_open_max_probes__gte=1,
                    half_open_successes__gte=1,
                    probe_lease_seconds__gt=0,
                    cooldown_seconds__gte=0,
                    cooldown_growth__gte=1,
                ),
                name="breaker_policy_usable",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_state_display()})"

    @property
    def effective_state(self) -> str:
        """closed, open, half_open, or forced_open (an operator's override wins)."""
        return effective_state(self.state, self.override)


class OpenBreakerManager(models.Manager["OpenBreaker"]):
    def get_queryset(self) -> models.QuerySet:
        return BreakerQuerySet(self.model, using=self._db).not_closed()


class OpenBreaker(Breaker):
    """Admin list of breakers that are not plainly closed (open, half-open, overridden)."""

    objects = OpenBreakerManager()

    class Meta:
        proxy = True
        verbose_name = "open breaker"


class BreakerEvent(models.Model):
    """One row per transition or override, written by the process that won it."""

    breaker = models.ForeignKey(Breaker, on_delete=models.CASCADE, related_name="events")
    generation = models.BigIntegerField()
    kind = models.CharField(max_length=20)  # transition / override / override_expired
    from_state = models.CharField(max_length=10)
    to_state = models.CharField(max_length=10)
    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=150, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["breaker", "-created_at"], name="breakerevent_recent"),
            models.Index(fields=["created_at"], name="breakerevent_created"),  # retention
            # The dashboard's last overrides: a few rows among millions of transitions.
            models.Index(
                fields=["-created_at"],
                condition=models.Q(kind="override"),
                name="breakerevent_overrides",
            ),
        ]
        constraints = [
            # Each generation is entered by exactly one change: the database refuses a second.
            models.UniqueConstraint(
                fields=["breaker", "generation"], name="breakerevent_one_per_generation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.breaker_id} g{self.generation}: {self.from_state} -> {self.to_state}"
