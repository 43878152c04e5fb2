import json
import uuid

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


def bare(request: HttpRequest, slug: str) -> JsonResponse:
    """The baseline: what the same server does with no auth, no lookup, no DRF."""
    return JsonResponse({"slug": slug, "uuid": None, "source": "bare", "fallback_used": False})


@csrf_exempt
def bare_report(request: HttpRequest) -> JsonResponse:
    """The baseline for POST /api/v1/errors/: parse the JSON, answer 201, store nothing."""
    report = json.loads(request.body)
    support_id = uuid.uuid4()
    message = f"{report.get('user_message') or 'Something went wrong.'} (Reference: {support_id})"
    return JsonResponse({"support_id": str(support_id), "message": message}, status=201)


urlpatterns = [
    path("bench/bare/<str:slug>/", bare),
    path("bench/bare-report/", bare_report),
    path("", include("controlplane.urls")),
]
