"""REST API: resolve slugs (one or a batch), stats, warming, and the registry itself."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.errors.exceptions import ConflictError, NotFoundError, UserFacingError
from controlplane.lib.pagination import cursor_page
from controlplane.lib.permissions import IsAnyGroup, IsClient, IsOps, IsSupport
from controlplane.lib.strict import StrictInput
from lookups import clearing, warming
from lookups.models import SLUG_MAX_LENGTH, SLUG_PATTERN, MicroService, slug_validator
from lookups.resolver import LookupResult, get_lookups

SLUG_PARAMETER = OpenApiParameter(
    "slug",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="lowercase letters, digits and single hyphens, e.g. wall-painting",
    pattern=SLUG_PATTERN,
)


class LookupReason(serializers.Serializer):
    """Why an answer is stale or the slug-only fallback (the database could not answer)."""

    code = serializers.CharField(help_text="as in error envelopes")
    message = serializers.CharField()
    recovery = serializers.ChoiceField(choices=["fallback"])


class LookupOutput(serializers.Serializer):
    slug = serializers.CharField()
    uuid = serializers.UUIDField(allow_null=True, help_text="null: continue with the slug only")
    source = serializers.ChoiceField(choices=["cache", "db", "fallback"])
    fallback_used = serializers.BooleanField(help_text="true: uuid is null, the slug-only fallback")
    stale = serializers.BooleanField(
        help_text="true: the database is unreachable and this mapping is what this process "
        "held when it lost the database"
    )
    stale_age_seconds = serializers.FloatField(
        allow_null=True, help_text="seconds since a stale mapping was last known correct"
    )
    reason = LookupReason(allow_null=True, help_text="set on stale and fallback answers")


class LookupItemError(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    recovery = serializers.ChoiceField(choices=["abort", "fallback"])


class LookupBatchItem(LookupOutput):
    """A batch item: a single lookup's answer, or the code and recovery a single lookup's
    error envelope would carry (``error``; uuid and source null)."""

    slug = serializers.CharField(allow_null=True)
    source = serializers.ChoiceField(choices=["cache", "db", "fallback"], allow_null=True)
    error = LookupItemError(required=False)


def _result(item: LookupResult | UserFacingError) -> dict[str, Any]:
    if isinstance(item, LookupResult):
        return LookupOutput(item).data
    slug = item.metadata.get("slug")
    return {
        "slug": slug,
        "uuid": None,
        "source": None,
        "fallback_used": False,
        "stale": False,
        "stale_age_seconds": None,
        "reason": None,
        "error": {
            "code": item.code,
            "message": item.user_message,
            "recovery": getattr(item, "recovery", "abort"),
        },
    }


class LookupView(APIView):
    permission_classes = [IsClient]

    @extend_schema(responses=LookupOutput, parameters=[SLUG_PARAMETER])
    def get(self, request: Request, slug: str) -> Response:
        return Response(LookupOutput(get_lookups().lookup(slug)).data)


class BatchInput(StrictInput, serializers.Serializer):
    slugs = serializers.ListField(
        child=serializers.CharField(allow_blank=True),
        min_length=1,
        max_length=settings.LOOKUP_BATCH_MAX,
        error_messages={"max_length": "At most {max_length} slugs per batch."},
    )


class BatchView(APIView):
    permission_classes = [IsClient]

    @extend_schema(
        request=BatchInput,
        responses=inline_serializer(
            "LookupBatch", {"results": serializers.ListField(child=LookupBatchItem())}
        ),
    )
    def post(self, request: Request) -> Response:
        data = BatchInput(data=request.data)
        data.is_valid(raise_exception=True)
        results = get_lookups().lookup_many(data.validated_data["slugs"])
        return Response({"results": [_result(item) for item in results]})


class StatsView(APIView):
    permission_classes = [IsSupport]

    @extend_schema(
        description=(
            "This process, the sum over every running process, and each process: cache size, "
            "max size and TTL; lifetime counts; the 5-minute and 1-hour windows "
            "(`windows`) with their alert flags (`alerts`: raised when either window crosses "
            "a threshold of `thresholds`); and `top_misses`, the slugs that miss most."
        ),
        responses=inline_serializer(
            "LookupStats",
            {
                "process": serializers.DictField(),
                "aggregate": serializers.DictField(),
                "processes": serializers.ListField(child=serializers.DictField()),
                "thresholds": serializers.DictField(),
                "top_misses": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(get_lookups().stats())


class WarmInput(StrictInput, serializers.Serializer):
    slugs = serializers.ListField(
        child=serializers.CharField(max_length=SLUG_MAX_LENGTH, validators=[slug_validator]),
        required=False,
        allow_empty=True,
    )


class WarmView(APIView):
    permission_classes = [IsOps]

    @extend_schema(
        request=WarmInput,
        responses=inline_serializer(
            "WarmResult",
            {"request_id": serializers.UUIDField(), "reports": serializers.ListField()},
        ),
    )
    def post(self, request: Request) -> Response:
        data = WarmInput(data=request.data)
        data.is_valid(raise_exception=True)
        result = warming.warm_everywhere(
            get_lookups(), slugs=data.validated_data.get("slugs") or None
        )
        return Response(result)


class ClearInput(StrictInput, serializers.Serializer):
    """No fields: the body is ``{}`` (or empty)."""


class ClearView(APIView):
    permission_classes = [IsOps]

    @extend_schema(
        description=(
            "Clear the lookup cache in every web and worker process; audited (who, when). "
            "`reports` lists each process that cleared within LOOKUP_WARM_WAIT_SECONDS."
        ),
        request=ClearInput,
        responses=inline_serializer(
            "ClearResult",
            {
                "request_id": serializers.UUIDField(),
                "requested_by": serializers.CharField(),
                "via": serializers.CharField(),
                "reports": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    def post(self, request: Request) -> Response:
        ClearInput(data=request.data).is_valid(raise_exception=True)
        return Response(clearing.clear_everywhere(get_lookups(), actor=request.user, via="api"))


class MicroServiceSerializer(StrictInput, serializers.ModelSerializer):
    slug = serializers.CharField(max_length=100, validators=[slug_validator])

    class Meta:
        model = MicroService
        fields = ["slug", "uuid", "name", "active", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        # A taken uuid is a 409 (the database's unique constraint, like a taken slug),
        # not a 400 from a validator's racy pre-check.
        extra_kwargs = {"uuid": {"required": False, "validators": []}}


class SlugPagination(CursorPagination):
    ordering = "slug"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 500


class _RegistryView(APIView):
    """Reads for every group; writes for ops."""

    def get_permissions(self) -> list[Any]:
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [IsAnyGroup()]
        return [IsOps()]


def _save(serializer: MicroServiceSerializer) -> MicroService:
    try:
        with transaction.atomic():
            return serializer.save()
    except IntegrityError as exc:
        raise ConflictError(
            "A micro-service with this slug or UUID already exists.",
            code="MICRO_SERVICE_EXISTS",
            original=exc,
        ) from exc


class MicroServiceListView(_RegistryView):
    @extend_schema(
        operation_id="v1_micro_services_list",
        responses=cursor_page("MicroServicePage", MicroServiceSerializer(many=True)),
    )
    def get(self, request: Request) -> Response:
        paginator = SlugPagination()
        page = paginator.paginate_queryset(MicroService.objects.all(), request, view=self)
        return paginator.get_paginated_response(MicroServiceSerializer(page, many=True).data)

    @extend_schema(request=MicroServiceSerializer, responses={201: MicroServiceSerializer})
    def post(self, request: Request) -> Response:
        serializer = MicroServiceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(
            MicroServiceSerializer(_save(serializer)).data, status=status.HTTP_201_CREATED
        )


class MicroServiceDetailView(_RegistryView):
    def _get(self, slug: str) -> MicroService:
        service = MicroService.objects.filter(slug=slug).first()
        if service is None:
            raise NotFoundError(
                f"No micro-service with slug {slug!r}.", code="MICRO_SERVICE_NOT_FOUND"
            )
        return service

    @extend_schema(responses=MicroServiceSerializer)
    def get(self, request: Request, slug: str) -> Response:
        return Response(MicroServiceSerializer(self._get(slug)).data)

    @extend_schema(request=MicroServiceSerializer, responses=MicroServiceSerializer)
    def put(self, request: Request, slug: str) -> Response:
        serializer = MicroServiceSerializer(self._get(slug), data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(MicroServiceSerializer(_save(serializer)).data)

    @extend_schema(request=MicroServiceSerializer, responses=MicroServiceSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        serializer = MicroServiceSerializer(self._get(slug), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        return Response(MicroServiceSerializer(_save(serializer)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str) -> Response:
        self._get(slug).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("lookups/batch/", BatchView.as_view(), name="lookup-batch"),
    path("lookups/stats/", StatsView.as_view(), name="lookup-stats"),
    path("lookups/warm/", WarmView.as_view(), name="lookup-warm"),
    path("lookups/clear/", ClearView.as_view(), name="lookup-clear"),
    path("lookups/<str:slug>/", LookupView.as_view(), name="lookup"),
    path("micro-services/", MicroServiceListView.as_view(), name="micro-service-list"),
    path(
        "micro-services/<str:slug>/", MicroServiceDetailView.as_view(), name="micro-service-detail"
    ),
]
