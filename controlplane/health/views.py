from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.health.checks import HEALTH_BUDGET_SECONDS, UNHEALTHY, collect
from controlplane.health.conditions import after_health_check


class HealthView(APIView):
    """Overall status plus per-check detail. 200 healthy/degraded, 503 unhealthy.

    No authentication: load balancers and monitors poll it, and authenticating would
    itself need the database this endpoint reports on.
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: inline_serializer(
                "Health", {"status": serializers.CharField(), "checks": serializers.DictField()}
            ),
            503: inline_serializer(
                "Unhealthy", {"status": serializers.CharField(), "checks": serializers.DictField()}
            ),
        }
    )
    def get(self, request: Request) -> Response:
        report = collect(budget=HEALTH_BUDGET_SECONDS)
        after_health_check(report)  # "worker absent" is noticed here: no worker can say it
        return Response(report, status=503 if report["status"] == UNHEALTHY else 200)


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process answers. Touches nothing else."""
    return HttpResponse("ok", content_type="text/plain")
