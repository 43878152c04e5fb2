from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny
from rest_framework.routers import DefaultRouter

from controlplane.health.dashboard import dashboard_reset, dashboard_view
from controlplane.health.scrape import metrics_view
from controlplane.health.views import HealthView, healthz

handler400 = "controlplane.errors.views.bad_request"
handler403 = "controlplane.errors.views.permission_denied"
handler404 = "controlplane.errors.views.page_not_found"
handler500 = "controlplane.errors.views.server_error"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/health/", HealthView.as_view(), name="health"),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="ops-dashboard"),
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
]
