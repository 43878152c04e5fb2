"""REST API for breakers: everyone reads, remote callers ask and report, ops override."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.urls import path
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.breakers import actions
from controlplane.breakers.exceptions import CircuitOpenError
from controlplane.breakers.models import Breaker
from controlplane.breakers.registry import registry
from controlplane.errors.exceptions import NotFoundError
from controlplane.lib.permissions import IsAnyGroup, IsClient, IsOps
from controlplane.lib.strict import StrictInput


class OverrideOutput(serializers.Serializer):
    kind = serializers.CharField(source="override")
    by = serializers.CharField(source="override_by")
    reason = serializers.CharField(source="override_reason")
    at = serializers.DateTimeField(source="override_at")
    expires_at = serializers.DateTimeField(source="override_expires_at", allow_null=True)


class BreakerOutput(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.CharField()
    generation = serializers.IntegerField()
    failures = serializers.IntegerField(source="consecutive_failures")
    recent_failures = serializers.SerializerMethodField()
    total_failures = serializers.IntegerField()
    opened_at = serializers.DateTimeField(allow_null=True)
    open_until = serializers.DateTimeField(allow_null=True)
    override = serializers.SerializerMethodField()
    policy = serializers.CharField()
    failure_threshold = serializers.IntegerField()
    window_seconds = serializers.IntegerField()
    cooldown_seconds = serializers.FloatField()
    half_open_max_probes = serializers.IntegerField()

    def get_recent_failures(self, breaker: Breaker) -> int:
        return len(breaker.failure_times)

    def get_override(self, breaker: Breaker) -> dict[str, Any] | None:
        return OverrideOutput(breaker).data if breaker.override else None


class ResetInput(StrictInput, serializers.Serializer):
    reason = serializers.CharField(max_length=1000, trim_whitespace=True)


class OverrideInput(ResetInput):
    expires_in = serializers.FloatField(
        required=False, min_value=0.001, max_value=actions.MAX_EXPIRY_SECONDS, allow_null=True
    )


class OutcomeInput(StrictInput, serializers.Serializer):
    outcome = serializers.ChoiceField(choices=["success", "failure"])
    duration_ms = serializers.FloatField(required=False, min_value=0)
    probe = serializers.DateTimeField(
        required=False,
        default_timezone=UTC,
        help_text="In half-open, the probe GET .../permit/ gave you; required there.",
    )


PermitOutput = inline_serializer(
    "BreakerPermit",
    {
        "allowed": serializers.BooleanField(),
        "state": serializers.CharField(),
        "retry_after": serializers.FloatField(allow_null=True),
        "probe": serializers.DateTimeField(
            allow_null=True, help_text="In half-open: send it with the outcome of your call."
        ),
    },
)


def _get(name: str) -> Breaker:
    breaker = Breaker.objects.filter(name=actions.check_name(name)).first()
    if breaker is None:
        raise NotFoundError(f"No breaker named {name!r}.", code="BREAKER_NOT_FOUND")
    return breaker


class BreakerListView(APIView):
    permission_classes = [IsAnyGroup]

    @extend_schema(responses=BreakerOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(BreakerOutput(Breaker.objects.order_by("name")[:1000], many=True).data)


class BreakerDetailView(APIView):
    permission_classes = [IsAnyGroup]

    @extend_schema(responses=BreakerOutput)
    def get(self, request: Request, name: str) -> Response:
        return Response(BreakerOutput(_get(name)).data)


class _OverrideView(APIView):
    permission_classes = [IsOps]
    action: actions.OverrideAction

    def post(self, request: Request, name: str) -> Response:
        _get(name)
        data = OverrideInput(data=request.data)
        data.is_valid(raise_exception=True)
        breaker = actions.override_breaker(
            name=name,
            action=self.action,
            reason=data.validated_data["reason"],
            actor=request.user,
            expires_in=data.validated_data.get("expires_in"),
        )
        return Response(BreakerOutput(breaker).data)


class ResetView(_OverrideView):
    action = "reset"  # documented without expires_in; sent anyway, it is refused (422)

    @extend_schema(request=ResetInput, responses=BreakerOutput)
    def post(self, request: Request, name: str) -> Response:
        return super().post(request, name)


class ForceOpenView(_OverrideView):
    action = "force_open"

    @extend_schema(request=OverrideInput, responses=BreakerOutput)
    def post(self, request: Request, name: str) -> Response:
        return super().post(request, name)


class DisableView(_OverrideView):
    action = "disable"

    @extend_schema(request=OverrideInput, responses=BreakerOutput)
    def post(self, request: Request, name: str) -> Response:
        return super().post(request, name)


class OutcomeView(APIView):
    permission_classes = [IsClient]

    @extend_schema(request=OutcomeInput, responses=BreakerOutput)
    def post(self, request: Request, name: str) -> Response:
        data = OutcomeInput(data=request.data)
        data.is_valid(raise_exception=True)
        actions.claim_for_client(name=name, client=request.user)
        breaker = actions.report_outcome(
            name=name,
            outcome=data.validated_data["outcome"],
            probe=data.validated_data.get("probe"),
        )
        return Response(BreakerOutput(breaker).data)


class PermitView(APIView):
    """May a remote caller call now? In half-open, a yes takes one of the probe slots, and the
    answer carries the probe to report the call's outcome with."""

    permission_classes = [IsClient]

    @extend_schema(responses=PermitOutput)
    def get(self, request: Request, name: str) -> Response:
        actions.claim_for_client(name=name, client=request.user)
        runtime = registry.get(name)
        try:
            permit = runtime.acquire()
        except CircuitOpenError as refused:
            return Response(
                {
                    "allowed": False,
                    "state": refused.breaker_state,
                    "retry_after": refused.retry_after,
                    "probe": None,
                }
            )
        snap = runtime.snapshot
        state = "half_open" if permit.probe else (snap.state if snap else "unknown")
        probe = permit.probe_lease.isoformat() if permit.probe and permit.probe_lease else None
        return Response({"allowed": True, "state": state, "retry_after": None, "probe": probe})


urlpatterns = [
    path("breakers/", BreakerListView.as_view(), name="breaker-list"),
    path("breakers/<str:name>/", BreakerDetailView.as_view(), name="breaker-detail"),
    path("breakers/<str:name>/reset/", ResetView.as_view(), name="breaker-reset"),
    path("breakers/<str:name>/force-open/", ForceOpenView.as_view(), name="breaker-force-open"),
    path("breakers/<str:name>/disable/", DisableView.as_view(), name="breaker-disable"),
    path("breakers/<str:name>/outcomes/", OutcomeView.as_view(), name="breaker-outcomes"),
    path("breakers/<str:name>/permit/", PermitView.as_view(), name="breaker-permit"),
]
