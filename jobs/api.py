"""REST API for jobs: create (idempotent), list, poll, cancel."""

from __future__ import annotations

import uuid
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

POLL_STEPS = ((2, 1), (6, 2), (14, 4), (30, 8))  # (job age below, seconds until next poll)
POLL_CAP = 15


def poll_after(job: Job) -> int | None:
    """Suggested seconds before the next poll: 1 s, 2 s, 4 s, 8 s, then every 15 s."""
    if job.is_terminal:
        return None
    age = (timezone.now() - job.created_at).total_seconds()
    for below, seconds in POLL_STEPS:
        if age < below:
            return seconds
    return POLL_CAP


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
    cancel_requested_at = serializers.DateTimeField(allow_null=True)
    micro_id = serializers.CharField()
    micro_uuid = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    poll_after_seconds = serializers.SerializerMethodField()

    @extend_schema_field(JobError(allow_null=True))
    def get_error(self, job: Job) -> dict[str, Any] | None:
        if not job.error_code or job.status == JobStatus.SUCCEEDED:
            return None
        message = f"The job did not complete ({job.error_code})."
        if job.status == JobStatus.QUEUED:
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
    max_attempts = serializers.IntegerField(
        required=False, min_value=1, max_value=actions.MAX_ATTEMPTS_LIMIT
    )


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
    jobs = Job.objects.all()
    return jobs if in_groups(user, SUPPORT, OPS) else jobs.filter(created_by=user)


def _visible_or_404(user: Any, job_id: uuid.UUID) -> None:
    if not visible_jobs(user).filter(pk=job_id).exists():
        raise NotFoundError(f"No job {job_id}.", code="JOB_NOT_FOUND")


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
        limit = settings.JOB_MAX_PAYLOAD_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:  # refused before a byte of the body is read
            raise PayloadTooLargeError(
                f"The request body is {length} bytes; jobs accept at most {limit}.",
                metadata={"max_bytes": limit},
            )
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
    path("jobs/<uuid:job_id>/", JobDetailView.as_view(), name="job-detail"),
    path("jobs/<uuid:job_id>/cancel/", JobCancelView.as_view(), name="job-cancel"),
]
