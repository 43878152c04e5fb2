"""REST API for error records: services report errors, support reads them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.urls import path
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import SAFE_METHODS, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.errors import spool
from controlplane.errors.exceptions import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    UserFacingError,
    reference_text,
)
from controlplane.errors.models import ErrorGroup, ErrorRecord
from controlplane.errors.recording import record_error, stored_client
from controlplane.lib.pagination import NewestFirstPagination, cursor_page
from controlplane.lib.permissions import IsClient, IsSupport
from controlplane.lib.strict import StrictInput, whole_value_validator


class ErrorReportInput(StrictInput, serializers.Serializer):
    code = serializers.CharField(
        max_length=100,
        validators=[
            whole_value_validator(
                r"^[A-Z][A-Z0-9_]*$", "Use UPPER_SNAKE_CASE, e.g. PARSER_TIMEOUT."
            )
        ],
    )
    message = serializers.CharField(
        max_length=10_000, help_text="Technical message (never shown to users)."
    )
    user_message = serializers.CharField(max_length=2_000, required=False, allow_blank=True)
    service = serializers.CharField(max_length=100)
    context = serializers.DictField(required=False, default=dict)
    occurred_at = serializers.DateTimeField(required=False)
    support_id = serializers.UUIDField(required=False, help_text="Reuse an id you already showed.")
    http_status = serializers.IntegerField(min_value=400, max_value=599, default=500)
    type = serializers.CharField(max_length=50, required=False, default="reported_error")
    job_id = serializers.UUIDField(required=False)


class ErrorReportOutput(serializers.Serializer):
    support_id = serializers.UUIDField()
    message = serializers.CharField(help_text="The user-safe message with its reference.")


class ErrorRecordOutput(serializers.Serializer):
    support_id = serializers.UUIDField()
    code = serializers.CharField()
    type = serializers.CharField()
    http_status = serializers.IntegerField()
    message = serializers.SerializerMethodField()
    user_message = serializers.CharField()
    technical_message = serializers.CharField()
    context = serializers.JSONField()
    service = serializers.CharField()
    request_method = serializers.CharField()
    request_path = serializers.CharField()
    username = serializers.CharField()
    api_client = serializers.CharField()
    job_id = serializers.UUIDField(allow_null=True)
    breaker_name = serializers.CharField()
    breaker_state = serializers.CharField()
    # Where it happened in the traces and logs ("" on rows spooled before they existed).
    trace_id = serializers.CharField(default="")
    span_id = serializers.CharField(default="")
    request_id = serializers.CharField(default="", help_text="The X-Request-Id it answered.")
    exception_type = serializers.CharField()
    traceback = serializers.CharField()
    fingerprint = serializers.CharField()
    occurred_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()

    def get_message(self, record: ErrorRecord) -> str:
        return reference_text(record.user_message, record.support_id)


class ErrorGroupOutput(serializers.Serializer):
    count = serializers.IntegerField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    latest_support_id = serializers.UUIDField()


class ErrorListFilters(StrictInput, serializers.Serializer):
    code = serializers.CharField(required=False, max_length=100)
    service = serializers.CharField(required=False, max_length=100)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class ErrorListCreateView(APIView):
    """POST: a service reports an error (clients). GET: support lists errors."""

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [IsClient()]
        if self.request.method in SAFE_METHODS:
            return [IsSupport()]
        return [IsAuthenticated()]  # other methods fall through to 405

    @extend_schema(
        request=ErrorReportInput, responses={201: ErrorReportOutput, 200: ErrorReportOutput}
    )
    def post(self, request: Request) -> Response:
        data = ErrorReportInput(data=request.data)
        data.is_valid(raise_exception=True)
        report = data.validated_data
        limit = settings.ERROR_MAX_CONTEXT_BYTES
        size = len(json.dumps(report["context"], ensure_ascii=False).encode())
        if size > limit:
            raise PayloadTooLargeError(
                f"The error context is {size} bytes; at most {limit} are accepted.",
                code="CONTEXT_TOO_LARGE",
                metadata={"max_bytes": limit},
            )
        error = UserFacingError(
            report.get("user_message") or None,
            code=report["code"],
            technical_message=report["message"],
            context=report["context"],
            http_status=report["http_status"],
            support_id=report.get("support_id"),
        )
        error.error_type = report["type"]
        client = request.user.get_username()
        # A support_id made here is new, so nothing holds it: asking the table would only
        # refuse the report (503) while the database is down, instead of spooling it.
        holder = _holder(error.support_id) if report.get("support_id") else None
        if holder is None:
            recorded = record_error(
                error,
                service=report["service"],
                job_id=report.get("job_id"),
                occurred_at=report.get("occurred_at"),
                api_client=client,
                reported_by=request.user,
            )
            if recorded.saved != "duplicate":  # stored, spooled or logged: accepted
                body = ErrorReportOutput(
                    {"support_id": error.support_id, "message": error.message}
                ).data
                return Response(body, status=status.HTTP_201_CREATED)
            holder = _holder(error.support_id)  # a twin report won the insert
        # A support_id may be reused only for the caller's own reports (a twin is
        # acknowledged). Any other record holding it -- an error of a request still in the
        # spool, another client's report -- keeps it: a report cannot replace that record.
        if not (
            holder and holder.get("reported") and holder["api_client"] == stored_client(client)
        ):
            raise ConflictError(
                "This support_id belongs to another record; report without it to get a new one.",
                code="SUPPORT_ID_TAKEN",
            )
        body = ErrorReportOutput({"support_id": error.support_id, "message": error.message}).data
        return Response(body, status=status.HTTP_200_OK)

    @extend_schema(
        operation_id="v1_errors_list",
        parameters=[ErrorListFilters],
        responses=cursor_page("ErrorRecordPage", ErrorRecordOutput(many=True)),
    )
    def get(self, request: Request) -> Response:
        filters = ErrorListFilters(data=request.query_params)
        filters.is_valid(raise_exception=True)
        query = ErrorRecord.objects.all()
        wanted = filters.validated_data
        if "code" in wanted:
            query = query.filter(code=wanted["code"])
        if "service" in wanted:
            query = query.filter(service=wanted["service"])
        if "since" in wanted:
            query = query.filter(created_at__gte=wanted["since"])
        if "until" in wanted:
            query = query.filter(created_at__lt=wanted["until"])
        paginator = NewestFirstPagination()
        page = paginator.paginate_queryset(query, request, view=self)
        return paginator.get_paginated_response(ErrorRecordOutput(page, many=True).data)


def _holder(support_id: uuid.UUID) -> dict[str, Any] | None:
    """The record holding ``support_id`` (in the table, or this machine's spool), if any."""
    stored = (
        ErrorRecord.objects.filter(support_id=support_id).values("reported", "api_client").first()
    )
    return stored if stored is not None else spool.find(str(support_id))


class ErrorDetailView(APIView):
    permission_classes = [IsSupport]

    @extend_schema(
        parameters=[OpenApiParameter("support_id", uuid.UUID, OpenApiParameter.PATH)],
        responses=inline_serializer(
            "ErrorRecordDetail",
            {
                "record": ErrorRecordOutput(),
                "group": ErrorGroupOutput(allow_null=True),
                "spooled": serializers.BooleanField(),
            },
        ),
    )
    def get(self, request: Request, support_id: uuid.UUID) -> Response:
        record = ErrorRecord.objects.filter(support_id=support_id).first()
        if record is None:
            spooled = spool.find(str(support_id))
            if spooled is None:
                raise NotFoundError(f"No error record with support id {support_id}.")
            # Written while the database was down; not replayed yet, but findable.
            return Response({"record": spooled, "group": None, "spooled": True})
        group = ErrorGroup.objects.filter(fingerprint=record.fingerprint).first()
        return Response(
            {
                "record": ErrorRecordOutput(record).data,
                "group": ErrorGroupOutput(group).data if group else None,
                "spooled": False,
            }
        )


urlpatterns = [
    path("errors/", ErrorListCreateView.as_view(), name="error-list"),
    path("errors/<uuid:support_id>/", ErrorDetailView.as_view(), name="error-detail"),
]
