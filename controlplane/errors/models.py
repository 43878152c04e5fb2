from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class ErrorRecord(models.Model):
    """One error shown to someone, findable by the support_id they were given."""

    support_id = models.UUIDField(unique=True, editable=False)
    code = models.CharField(max_length=100)
    type = models.CharField(max_length=50, blank=True)
    http_status = models.PositiveSmallIntegerField(default=500)
    user_message = models.TextField(blank=True)
    technical_message = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)
    service = models.CharField(max_length=100, blank=True)
    request_method = models.CharField(max_length=10, blank=True)
    request_path = models.TextField(blank=True)
    # Written on a side connection, outside the request's transaction, so the
    # user and job links carry no database constraint; username is a snapshot.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    username = models.CharField(max_length=150, blank=True)
    api_client = models.CharField(max_length=150, blank=True)
    job_id = models.UUIDField(null=True, blank=True)
    breaker_name = models.CharField(max_length=100, blank=True)
    breaker_state = models.CharField(max_length=20, blank=True)
    # Where the error happened in the traces and logs (controlplane.lib.correlation): the
    # request id also travels upstream as X-Request-Id, so it finds the upstream's lines.
    trace_id = models.CharField(max_length=32, blank=True, db_default="")
    span_id = models.CharField(max_length=16, blank=True, db_default="")
    request_id = models.CharField(max_length=128, blank=True, db_default="")
    exception_type = models.CharField(max_length=200, blank=True)
    traceback = models.TextField(blank=True)
    fingerprint = models.CharField(max_length=64)
    # A request without an authenticated user (purged sooner, see ERROR_ANONYMOUS_RETENTION_DAYS).
    anonymous = models.BooleanField(default=False, db_default=False)
    # Stored without request details, past the per-source rate (controlplane.errors.bounds).
    compact = models.BooleanField(default=False, db_default=False)
    # Sent by a client through POST /api/v1/errors/, not raised by this service.
    reported = models.BooleanField(default=False, db_default=False)
    occurred_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_at"], name="errorrecord_created"),
            models.Index(fields=["code", "created_at"], name="errorrecord_code_created"),
            models.Index(fields=["service", "created_at"], name="errorrecord_service_created"),
            models.Index(fields=["fingerprint", "created_at"], name="errorrecord_fp_created"),
            models.Index(
                fields=["job_id"], name="errorrecord_job", condition=models.Q(job_id__isnull=False)
            ),
            # Support pastes a trace id or a request id from a log line or an upstream.
            models.Index(
                fields=["trace_id"], name="errorrecord_trace", condition=~models.Q(trace_id="")
            ),
            models.Index(
                fields=["request_id"],
                name="errorrecord_request",
                condition=~models.Q(request_id=""),
            ),
            models.Index(
                fields=["created_at"],
                name="errorrecord_anonymous_created",
                condition=models.Q(anonymous=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.support_id}"


class ErrorGroup(models.Model):
    """Records with the same fingerprint, counted atomically as they arrive."""

    fingerprint = models.CharField(max_length=64, unique=True)
    code = models.CharField(max_length=100)
    service = models.CharField(max_length=100, blank=True)
    count = models.BigIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    latest_support_id = models.UUIDField()

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["last_seen"], name="errorgroup_last_seen")]

    def __str__(self) -> str:
        return f"{self.code} x{self.count}"
