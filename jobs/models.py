from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import connection, models
from django.db.models import Count
from django.db.models.functions import Now


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT)

# What ``Job.waiting_for`` says while a job waits for an upstream's breaker, or for every
# breaker of a provider group (jobs.waiting).
WAITING_FOR_BREAKER = "breaker "
WAITING_FOR_GROUP = "group "


class JobQuerySet(models.QuerySet["Job"]):
    def status_counts(self, *, since: datetime) -> dict[str, int]:
        """Jobs created since ``since``, counted by status: every status, zeros included."""
        rows = self.filter(created_at__gte=since).order_by().values_list("status")
        counts = dict(rows.annotate(Count("id")))
        return {status: counts.get(status, 0) for status in JobStatus.values}

    def with_clock(self) -> JobQuerySet:
        """Each job with ``db_now``, the database's clock when it was read: what polling
        advice and deadlines are measured against (the web process's clock may differ)."""
        return self.annotate(db_now=Now())

    def waiting(self) -> JobQuerySet:
        """Queued jobs held back by something other than the queue (an open breaker)."""
        return self.filter(status=JobStatus.QUEUED).exclude(waiting_for="")

    def waiting_per_breaker(self) -> dict[str, int]:
        """How many jobs wait for each breaker, by breaker name; a job waiting for a group
        counts for each of its breakers (the partial index ``job_waiting`` holds exactly
        the rows read)."""
        waiting, params = (
            self.waiting().order_by().values("waiting_breakers").query.sql_with_params()
        )
        with connection.cursor() as cursor:
            cursor.execute(  # this queryset's own SQL; every value in it is a parameter
                f"SELECT name, count(*) FROM ({waiting}) w, unnest(w.waiting_breakers) name"  # noqa: S608
                " GROUP BY name",
                params,
            )
            return dict(cursor.fetchall())


class Job(models.Model):
    """A unit of background work. This row, not django-q2's tables, is the truth about it.

    Every status change is a conditional UPDATE on the previous status (and, from a
    worker, on the claim it holds) made in ``jobs.lifecycle``, so two
    workers, or a worker and a cancel, can never both win.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    progress_message = models.CharField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    timeout_seconds = models.PositiveIntegerField(default=600)
    timeout_at = models.DateTimeField(null=True, blank=True)
    # The whole job (queueing, every attempt, the waits between) ends by deadline_at, set
    # from deadline_seconds on the database clock at creation (and at an ops "retry now").
    # NULL on jobs created before deadlines existed.
    deadline_seconds = models.PositiveIntegerField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    # Why a queued job is not running yet although its attempt is not spent: "breaker
    # <name>" while that breaker refuses calls, "group <name>" while every breaker of that
    # provider group does. Cleared when the job is claimed again.
    waiting_for = models.CharField(max_length=120, blank=True)
    # The breakers it waits for: it is woken as soon as any of them permits (jobs.waiting).
    waiting_breakers = ArrayField(
        models.CharField(max_length=100), default=list, db_default=[], blank=True
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    shutdown_requested_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # New on every claim; a worker's writes match only its own claim (attempt numbers repeat
    # after "retry now" or a shutdown re-queue).
    claim_id = models.UUIDField(null=True, blank=True)
    run_after = models.DateTimeField(db_default=Now())
    dispatched_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True)
    result_url = models.URLField(max_length=2000, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)  # technical, for support (scrubbed)
    error_user_message = models.TextField(blank=True)  # what the client reads (user-safe)
    error_support_id = models.UUIDField(null=True, blank=True)
    # NULL means "no key" (excluded from the per-client unique constraint); "" would collide.
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    micro_id = models.CharField(max_length=100, blank=True)
    micro_uuid = models.UUIDField(null=True, blank=True)
    # The trace context of the request that created the job (W3C traceparent, X-Request-Id):
    # each run resumes that trace, so its records and outgoing calls belong to it.
    traceparent = models.CharField(max_length=55, blank=True, db_default="")
    request_id = models.CharField(max_length=128, blank=True, db_default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(db_default=Now())

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="job_status_created"),
            models.Index(fields=["kind", "-created_at"], name="job_kind_created"),
            models.Index(fields=["-created_at", "id"], name="job_created"),
            models.Index(
                fields=["lease_expires_at"],
                name="job_running_lease",
                condition=models.Q(status="running"),
            ),
            models.Index(
                fields=["run_after"], name="job_queued_due", condition=models.Q(status="queued")
            ),
            models.Index(
                fields=["created_at"],
                name="job_missing_micro_uuid",
                condition=models.Q(micro_uuid__isnull=True) & ~models.Q(micro_id=""),
            ),
            models.Index(fields=["error_support_id"], name="job_error_support_id"),
            models.Index(  # retention of finished jobs
                fields=["finished_at"],
                name="job_finished",
                condition=models.Q(finished_at__isnull=False),
            ),
            models.Index(fields=["idempotency_key"], name="job_idempotency_key"),
            models.Index(  # the deadline sweep of queued jobs
                fields=["deadline_at"],
                name="job_queued_deadline",
                condition=models.Q(status="queued", deadline_at__isnull=False),
            ),
            models.Index(  # waiting jobs per breaker (admin, dashboard, wake-up)
                fields=["waiting_for"],
                name="job_waiting",
                condition=models.Q(status="queued") & ~models.Q(waiting_for=""),
            ),
        ]
        constraints = [
            # A key is unique per client: another client's key never returns their job.
            models.UniqueConstraint(
                fields=["created_by", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                nulls_distinct=False,
                name="job_idempotency_key_per_client",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert only. A whole-row save writes back every column as it was read, undoing a
        worker's transition made in between; an existing job changes by conditional UPDATEs
        (``jobs.lifecycle``, ``set_max_attempts``) or, for columns no transition owns,
        ``save(update_fields=[...])``."""
        if not self._state.adding and kwargs.get("update_fields") is None:
            raise TypeError(
                "An existing Job is never saved whole: name update_fields, or change its "
                "status through jobs.lifecycle."
            )
        super().save(*args, **kwargs)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def set_max_attempts(self, max_attempts: int) -> bool:
        """Allow ``max_attempts`` runs in all: only while the job waits in the queue, and only
        above the runs it has had. One conditional UPDATE, so a worker that claims the job
        first wins and this changes nothing (False)."""
        changed = Job.objects.filter(
            pk=self.pk, status=JobStatus.QUEUED, attempts__lt=max_attempts
        ).update(max_attempts=max_attempts, updated_at=Now())
        if changed:
            self.max_attempts = max_attempts
        return bool(changed)


class JobEvent(models.Model):
    """One row per status change (or cancel request), written with the change."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=10)
    to_status = models.CharField(max_length=10)
    attempt = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)
    actor = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["job", "created_at"], name="jobevent_job_created")]

    def __str__(self) -> str:
        return f"{self.job_id}: {self.from_status} -> {self.to_status}"


class FailedJobManager(models.Manager["FailedJob"]):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(status__in=[JobStatus.FAILED, JobStatus.TIMED_OUT])


class FailedJob(Job):
    objects = FailedJobManager()

    class Meta:
        proxy = True
        verbose_name = "failed job"


class RunningJobManager(models.Manager["RunningJob"]):
    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(status=JobStatus.RUNNING)


class RunningJob(Job):
    objects = RunningJobManager()

    class Meta:
        proxy = True
        verbose_name = "running job"


class WaitingJobManager(models.Manager["WaitingJob"]):
    def get_queryset(self) -> models.QuerySet:
        return JobQuerySet(self.model, using=self._db).waiting()


class WaitingJob(Job):
    """Admin list of queued jobs waiting for an upstream's breaker (no attempt spent)."""

    objects = WaitingJobManager()

    class Meta:
        proxy = True
        verbose_name = "waiting job"
