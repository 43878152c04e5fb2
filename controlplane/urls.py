from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.urls import Resolver404, include, path, re_path, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter

from controlplane.errors.views import page_not_found
from controlplane.health.dashboard import dashboard_panels, dashboard_reset, dashboard_view
from controlplane.health.scrape import metrics_view
from controlplane.health.views import HealthView, healthz

handler400 = "controlplane.errors.views.bad_request"
handler403 = "controlplane.errors.views.permission_denied"
handler404 = "controlplane.errors.views.page_not_found"
handler500 = "controlplane.errors.views.server_error"


@csrf_exempt  # any method gets the 404, not a CSRF failure
def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    """Every unknown path under /api/: the 404 envelope with a support_id, in every
    environment. (With DEBUG on, Django answers a path that resolves to nothing with
    its HTML debug page, whatever handler404 says; this pattern resolves them all.)

    It also resolves paths that only lack their trailing slash, which CommonMiddleware
    would have redirected (APPEND_SLASH): GET and HEAD still are; other methods get the
    404, as a redirect would lose their body."""
    path_info = request.path_info
    if request.method in ("GET", "HEAD") and settings.APPEND_SLASH and not path_info.endswith("/"):
        try:
            match = resolve(f"{path_info}/", getattr(request, "urlconf", None))
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return page_not_found(request)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/health/", HealthView.as_view(), name="health"),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="ops-dashboard"),
    path(
        "admin/dashboard/panels/",
        admin.site.admin_view(dashboard_panels),
        name="ops-dashboard-panels",
    ),
    path(
        "admin/dashboard/reset/<str:name>/",
        admin.site.admin_view(dashboard_reset),
        name="ops-dashboard-reset",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("controlplane.errors.api")),
    path("api/v1/", include("controlplane.breakers.api")),
    path("api/v1/", include("lookups.api")),
    path("api/v1/", include("jobs.api")),
    # DRF's API root: an empty index that clients call to check their token.
    path("api/v1/", include(DefaultRouter().urls)),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[AllowAny]),
        name="api-docs",
    ),
    # The admin's CSS and JS when DEBUG is on, under any server (runserver did this itself;
    # empty when DEBUG is off: the proxy serves STATIC_ROOT).
    *staticfiles_urlpatterns(),
    re_path(r"^api/", api_not_found),  # last: only what nothing above matched
]
