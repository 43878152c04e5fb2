from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
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


class AlertKind(models.TextChoices):
    """What the service tells people about. "Firing" kinds stay firing until their condition
    ends (at most one firing event per kind and subject); the others are notices."""

    BREAKER_OPENED = "breaker.opened", "breaker opened"
    BREAKER_CLOSED = "breaker.closed", "breaker closed (or reset)"
    BREAKER_FORCED = "breaker.forced", "breaker forced open or disabled"
    BREAKER_OVERRIDE_EXPIRED = "breaker.override_expired", "breaker override expired"
    PROVIDER_UNHEALTHY = "provider.unhealthy", "provider unhealthy"
    PROVIDER_RECOVERED = "provider.recovered", "provider recovered"
    ERROR_NEW_GROUP = "error.new_group", "new error group"
    ERROR_BURST = "error.burst", "error burst in a group"
    JOB_FAILURE_BURST = "job.failure_burst", "job failure burst"
    WORKER_ABSENT = "worker.absent", "no worker running"
    SPOOL_BACKLOG = "spool.backlog", "error spool backlog"
    DIGEST = "digest", "digest of rate-limited notifications"


FIRING_KINDS = frozenset(
    {
        AlertKind.BREAKER_OPENED,
        AlertKind.BREAKER_FORCED,
        AlertKind.PROVIDER_UNHEALTHY,
        AlertKind.ERROR_BURST,
        AlertKind.JOB_FAILURE_BURST,
        AlertKind.WORKER_ABSENT,
        AlertKind.SPOOL_BACKLOG,
    }
)


class AlertStatus(models.TextChoices):
    FIRING = "firing"
    RESOLVED = "resolved"
    NOTICE = "notice"


class AlertChannel(models.Model):
    """Where notifications go: a signed JSON webhook, a Slack-compatible webhook, or email."""

    WEBHOOK, SLACK, EMAIL = "webhook", "slack", "email"
    KINDS = [(WEBHOOK, "JSON webhook (HMAC-signed)"), (SLACK, "Slack webhook"), (EMAIL, "email")]

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=KINDS, default=WEBHOOK)
    target = models.TextField(
        help_text="The webhook URL, or for email the addresses separated by commas."
    )
    # Stored to sign with (HMAC needs the key itself); never shown back in the admin.
    secret = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    max_per_hour = models.PositiveIntegerField(
        default=30, help_text="Deliveries per rolling hour; past it they wait for a digest."
    )
    events = ArrayField(
        models.CharField(max_length=40, choices=AlertKind.choices),
        default=list,
        blank=True,
        help_text="The event kinds sent here; empty: all of them.",
    )
    # "env": made from ALERT_WEBHOOK_URLS (enabled or disabled as that list changes).
    source = models.CharField(max_length=10, blank=True, editable=False)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        """A webhook or Slack target is an http(s) URL; an email target, addresses."""
        if self.kind == self.EMAIL:
            addresses = [a.strip() for a in self.target.split(",") if a.strip()]
            if not addresses:
                raise ValidationError({"target": "At least one email address."})
            for address in addresses:
                try:
                    validate_email(address)
                except ValidationError:
                    raise ValidationError({"target": f"Not an address: {address!r}."}) from None
        else:
            try:
                URLValidator(schemes=["http", "https"])(self.target.strip())
            except ValidationError:
                raise ValidationError({"target": "An http:// or https:// URL."}) from None

    def wants(self, kind: str) -> bool:
        return self.enabled and (not self.events or kind in self.events)


class AlertEventQuerySet(models.QuerySet["AlertEvent"]):
    def firing(self) -> AlertEventQuerySet:
        return self.filter(status=AlertStatus.FIRING)


class AlertEvent(models.Model):
    """Something people are told about, once: ``dedup_key`` is unique, so however many
    processes see the trigger, the database keeps one row (and one delivery per channel)."""

    kind = models.CharField(max_length=40, choices=AlertKind.choices)
    subject = models.CharField(max_length=200, help_text="e.g. the breaker or provider name.")
    dedup_key = models.CharField(max_length=300, unique=True)
    status = models.CharField(max_length=10, choices=AlertStatus.choices)
    summary = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Last seen still true, for a condition whose reporter can vanish (a host's spool
    # backlog): not re-confirmed for a while, it ends (controlplane.health.alert_repairs).
    confirmed_at = models.DateTimeField(null=True, blank=True)

    objects = AlertEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["-created_at"], name="alertevent_created"),
            models.Index(fields=["kind", "-created_at"], name="alertevent_kind_created"),
            # A subject's events: the breaker generation guard, the sweep's catch-up.
            models.Index(fields=["subject", "kind"], name="alertevent_subject_kind"),
        ]
        constraints = [
            # One episode at a time per condition and subject: a second process that sees
            # the same condition inserts nothing.
            models.UniqueConstraint(
                fields=["kind", "subject"],
                condition=models.Q(status="firing"),
                name="alertevent_one_firing",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject} ({self.status})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    RATE_LIMITED = "rate_limited", "rate limited (waits for a digest)"
    DIGESTED = "digested", "sent in a digest"


class AlertDelivery(models.Model):
    """One event to one channel: attempts, response codes and the last error."""

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    response_codes = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Set by the first attempt, under the channel's row lock: what the rate limit counts.
    started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    digest = models.ForeignKey(
        AlertEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="folded"
    )
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "alert deliveries"
        indexes = [
            models.Index(fields=["-created_at"], name="alertdelivery_created"),
            models.Index(fields=["channel", "started_at"], name="alertdelivery_channel_started"),
            models.Index(
                fields=["channel"],
                name="alertdelivery_held",
                condition=models.Q(status="rate_limited"),
            ),
            models.Index(  # the sweep's look for deliveries nothing drives any more
                fields=["updated_at"],
                name="alertdelivery_open",
                condition=models.Q(status__in=["pending", "retrying"]),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event", "channel"], name="alertdelivery_once")
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.channel_id} ({self.status})"
