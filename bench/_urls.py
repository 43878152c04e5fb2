from django.http import HttpRequest, JsonResponse
from django.urls import include, path


def bare(request: HttpRequest, slug: str) -> JsonResponse:
    """The baseline: what the same server does with no auth, no lookup, no DRF."""
    return JsonResponse({"slug": slug, "uuid": None, "source": "bare", "fallback_used": False})


urlpatterns = [
    path("bench/bare/<str:slug>/", bare),
    path("", include("controlplane.urls")),
]
