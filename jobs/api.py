"""REST API for jobs: create (idempotent), list, poll, cancel."""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.errors.exceptions import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    reference_text,
)
from controlplane.lib.pagination import NewestFirstPagination, cursor_page
from controlplane.lib.permissions import OPS, SUPPORT, IsClient, IsSupport, in_groups
from controlplane.lib.strict import StrictInput, whole_value_validator
from jobs import actions, registry
from jobs.models import Job, JobStatus

# A client that polls when told polls at ages 0, 1, 3, 7, 15, 30, ... s and is told 1, 2, 4,
# 8, then 15 s. Each boundary lies half way between two of those polls, so a poll that is
# a little early or late (network, timers) still gets the next step. (job age below, advice)
POLL_STEPS = ((0.5, 1), (2, 2), (5, 4), (11, 8))
POLL_CAP = 15


def poll_after(job: Job, now: datetime | None = None) -> int | None:
    """Suggested seconds before the next poll: 1 s, 2 s, 4 s, 8 s, then every 15 s, and
    never past the job's deadline (the last advice lands on it, rounded up to a whole
    second: by then the job has ended, and a read shows it). Measured on the database
    clock the job was read with, when it was."""
    if job.is_terminal:
        return None
    now = now or getattr(job, "db_now", None) or timezone.now()
    age = (now - job.created_at).total_seconds()
    advice = next((seconds for below, seconds in POLL_STEPS if age < below), POLL_CAP)
    if job.deadline_at is not None:
        left = (job.deadline_at - now).total_seconds()
        advice = min(advice, max(1, math.ceil(left)))
    return advice


class JobError(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    support_id = serializers.UUIDField(allow_null=True)


class JobOutput(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    progress = serializers.IntegerField()
    progress_message = serializers.CharField()
    result = serializers.JSONField(allow_null=True)
    result_url = serializers.CharField()
    error = serializers.SerializerMethodField()
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    timeout_seconds = serializers.IntegerField()
    timeout_at = serializers.DateTimeField(allow_null=True)
    deadline_seconds = serializers.IntegerField(allow_null=True)
    deadline_at = serializers.DateTimeField(
        allow_null=True, help_text="The job ends by then: succeeded, failed or timed_out."
    )
    waiting_for = serializers.CharField(
        help_text='Why a queued job is held back, e.g. "breaker llamaparse" while that '
        'upstream\'s breaker refuses calls, or "group llm" while every breaker of that '
        "provider group does (no attempt is spent; it runs once any of them permits); "
        "empty otherwise."
    )
    run_after = serializers.DateTimeField(help_text="A queued job runs no earlier than this.")
    cancel_requested_at = serializers.DateTimeField(allow_null=True)
    micro_id = serializers.CharField()
    micro_uuid = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    poll_after_seconds = serializers.SerializerMethodField()

    @extend_schema_field(JobError(allow_null=True))
    def get_error(self, job: Job) -> dict[str, Any] | None:
        """The error's own user message (what its ErrorRecord keeps), then its reference."""
        if not job.error_code or job.status == JobStatus.SUCCEEDED:
            return None
        message = job.error_user_message or f"The job did not complete ({job.error_code})."
        if job.status == JobStatus.QUEUED:
            message = message if message.endswith((".", "!", "?")) else f"{message}."
            message += " It will be retried."
        if job.error_support_id:
            message = reference_text(message, job.error_support_id)
        return {
            "code": job.error_code,
            "message": message,
            "support_id": str(job.error_support_id) if job.error_support_id else None,
        }

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_poll_after_seconds(self, job: Job) -> int | None:
        return poll_after(job)


class JobInput(StrictInput, serializers.Serializer):
    kind = serializers.CharField(max_length=100)
    payload = serializers.DictField(required=False, default=dict)
    micro_id = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    timeout_seconds = serializers.IntegerField(required=False, min_value=1)
    deadline_seconds = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="The whole job (queueing, every attempt, the waits between) ends within "
        "this many seconds, or it is timed_out with deadline_exceeded. Default "
        "JOB_DEFAULT_DEADLINE_SECONDS; at least timeout_seconds.",
    )
    max_attempts = serializers.IntegerField(
        required=False, min_value=1, max_value=actions.MAX_ATTEMPTS_LIMIT
    )


class JobBatchItem(JobInput):
    idempotency_key = serializers.CharField(
        max_length=200,
        required=False,
        help_text="Like a single create's Idempotency-Key: a replayed batch returns the jobs "
        "its keyed items created the first time.",
    )


class JobBatchInput(StrictInput, serializers.Serializer):
    jobs = JobBatchItem(
        many=True,
        min_length=1,
        max_length=settings.JOB_BATCH_MAX,
        error_messages={"max_length": "At most {max_length} jobs per batch."},
    )

    def validate_jobs(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            key = item.get("idempotency_key")
            if key is not None and first.setdefault(key, index) != index:
                # A 409 like a key reused across requests: the schema cannot say "unique
                # per item", so a schema-valid body must not get a 400.
                raise ConflictError(
                    f"Item {index} has the same idempotency_key as item {first[key]}.",
                    code="IDEMPOTENCY_KEY_REUSED",
                    metadata={"item": index, "same_as_item": first[key]},
                )
        return items


class JobBatchOutput(serializers.Serializer):
    jobs = JobOutput(many=True)


class JobFilters(StrictInput, serializers.Serializer):
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    kind = serializers.CharField(
        max_length=100,
        required=False,
        validators=[
            whole_value_validator(registry.KIND_PATTERN, "Job kinds look like demo.sleep.")
        ],
    )


def visible_jobs(user: Any) -> QuerySet[Job]:
    """Support and ops see every job; a client sees the jobs it created."""
    jobs = Job.objects.with_clock()
    return jobs if in_groups(user, SUPPORT, OPS) else jobs.filter(created_by=user)


def _visible_or_404(user: Any, job_id: uuid.UUID) -> None:
    if not visible_jobs(user).filter(pk=job_id).exists():
        raise NotFoundError(f"No job {job_id}.", code="JOB_NOT_FOUND")


def _refuse_oversize(request: Request) -> None:
    """Refused before a byte of the body is read."""
    limit = settings.JOB_MAX_PAYLOAD_BYTES
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise PayloadTooLargeError(
            f"The request body is {length} bytes; jobs accept at most {limit}.",
            metadata={"max_bytes": limit},
        )


def _job_response(job: Job, status_code: int = status.HTTP_200_OK) -> Response:
    body = JobOutput(job).data
    response = Response(body, status=status_code)
    if body["poll_after_seconds"] is not None:
        response["X-Poll-After"] = str(body["poll_after_seconds"])
    return response


class JobListCreateView(APIView):
    def get_permissions(self) -> list[Any]:
        # Clients create; clients, support and ops read (each client its own jobs).
        return [IsClient()] if self.request.method == "POST" else [(IsClient | IsSupport)()]

    @extend_schema(
        request=JobInput,
        responses={201: JobOutput, 200: JobOutput},
        parameters=[OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER)],
        description=(
            "201: the job is stored and will run. A failed hand-off to the worker queue after "
            "that is retried by the server, never answered as an error. Send an "
            "Idempotency-Key to retry a create whose answer was lost without a second job."
        ),
    )
    def post(self, request: Request) -> Response:
        _refuse_oversize(request)
        data = JobInput(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get("Idempotency-Key", "").strip() or None
        if key and len(key) > 200:
            raise InvalidRequestError(
                "The Idempotency-Key header is longer than 200 characters.",
                code="INVALID_IDEMPOTENCY_KEY",
            )
        job, created = actions.create_job(
            created_by=request.user, idempotency_key=key, **data.validated_data
        )
        return _job_response(job, status.HTTP_201_CREATED if created else status.HTTP_200_OK)

    @extend_schema(
        operation_id="v1_jobs_list",
        parameters=[JobFilters],
        responses=cursor_page("JobPage", JobOutput(many=True)),
    )
    def get(self, request: Request) -> Response:
        filters = JobFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        jobs = visible_jobs(request.user)
        if "status" in filters.validated_data:
            jobs = jobs.filter(status=filters.validated_data["status"])
        if "kind" in filters.validated_data:
            jobs = jobs.filter(kind=filters.validated_data["kind"])
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobOutput(page, many=True).data)


class JobBatchView(APIView):
    permission_classes = [IsClient]

    @extend_schema(
        request=JobBatchInput,
        responses={201: JobBatchOutput, 200: JobBatchOutput},
        description=(
            "Create up to JOB_BATCH_MAX jobs (default 100) in one transaction: all of them, "
            "or none. Each item takes a single create's fields, plus an optional "
            "`idempotency_key` (the Idempotency-Key header is refused here). An item refused "
            "for any reason refuses the batch with that item's error, its index in "
            "`metadata.item` (or, for a malformed item, under `metadata.fields.jobs`). "
            "The answer lists the jobs in the items' order. 201: at least one job was "
            "created; 200: every item replayed a key and the jobs are those created first. "
            "The body counts against JOB_MAX_PAYLOAD_BYTES as a whole."
        ),
    )
    def post(self, request: Request) -> Response:
        _refuse_oversize(request)
        if "Idempotency-Key" in request.headers:
            raise InvalidRequestError(  # a client relying on it would create twice
                "A batch takes an idempotency_key per item, not the Idempotency-Key header.",
                metadata={"fields": {"Idempotency-Key": ["Send idempotency_key per item."]}},
            )
        data = JobBatchInput(data=request.data)
        if not data.is_valid():
            raise _batch_invalid(data.errors)
        results = actions.create_jobs(items=data.validated_data["jobs"], created_by=request.user)
        created = any(was_created for _, was_created in results)
        return Response(
            JobBatchOutput({"jobs": [job for job, _ in results]}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _batch_invalid(errors: dict[str, Any]) -> InvalidRequestError:
    """DRF lists an error per item ({} for a valid one): keyed by index here, and the first
    bad item's index is ``metadata.item``."""
    jobs = errors.get("jobs")
    if isinstance(jobs, list) and all(isinstance(error, dict) for error in jobs):
        errors = {**errors, "jobs": {index: error for index, error in enumerate(jobs) if error}}
    fields = json.loads(json.dumps(errors))  # DRF's ErrorDetail and int keys, as plain JSON
    indexes = [int(key) for key in fields.get("jobs", {}) if key.isdigit()]
    metadata: dict[str, Any] = {"fields": fields}
    message = "The request is invalid; see metadata.fields."
    if indexes:
        metadata["item"] = min(indexes)
        message = f"Item {min(indexes)} is invalid; see metadata.fields."
    return InvalidRequestError(message, metadata=metadata)


class JobDetailView(APIView):
    permission_classes = [IsClient | IsSupport]

    @extend_schema(responses=JobOutput)
    def get(self, request: Request, job_id: uuid.UUID) -> Response:
        _visible_or_404(request.user, job_id)
        job = actions.read_job(job_id)
        if job is None:  # deleted between the two reads
            raise NotFoundError(f"No job {job_id}.", code="JOB_NOT_FOUND")
        return _job_response(job)


class JobCancelView(APIView):
    permission_classes = [IsClient]

    @extend_schema(request=None, responses=JobOutput)
    def post(self, request: Request, job_id: uuid.UUID) -> Response:
        _visible_or_404(request.user, job_id)
        return _job_response(actions.cancel_job(job_id=job_id, actor=request.user))


urlpatterns = [
    path("jobs/", JobListCreateView.as_view(), name="job-list"),
    path("jobs/batch/", JobBatchView.as_view(), name="job-batch"),
    path("jobs/<uuid:job_id>/", JobDetailView.as_view(), name="job-detail"),
    path("jobs/<uuid:job_id>/cancel/", JobCancelView.as_view(), name="job-cancel"),
]
