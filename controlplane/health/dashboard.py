"""The ops dashboard: what is broken right now, on one admin page.

The page loads once; its panels (``admin/dashboard/_panels.html``) are fetched again from
``dashboard_panels`` every DASHBOARD_REFRESH_SECONDS by ``health/dashboard.js``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.admin import state_badge
from controlplane.breakers.models import Breaker, BreakerEvent
from controlplane.breakers.snapshot import CLOSED, FORCED_OPEN
from controlplane.errors.exceptions import UserFacingError
from controlplane.errors.models import ErrorGroup
from controlplane.health.alerts import firing_alerts
from controlplane.health.breaker_timeline import timeline
from controlplane.health.checks import collect
from controlplane.health.conditions import after_health_check
from controlplane.health.provider_history import provider_strips
from jobs.models import Job, JobStatus
from lookups.metrics import thresholds
from lookups.resolver import get_lookups

CHART_WIDTH, CHART_HEIGHT = 720, 120
SERVICE_BREAKERS_SHOWN = 200  # closed ones of this service's own; every not-closed one is shown
LAST_OVERRIDES = 10


def _hourly_errors(now: Any) -> list[dict[str, Any]]:
    start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('hour', created_at) AS hour, count(*) FROM errors_errorrecord "
            "WHERE created_at >= %s GROUP BY 1",
            [start],
        )
        counts = {hour: n for hour, n in cursor.fetchall()}
    hours = [start + timedelta(hours=i) for i in range(24)]
    peak = max([counts.get(h, 0) for h in hours] + [1])
    bar = CHART_WIDTH / 24
    return [
        {
            "hour": hour,
            "count": counts.get(hour, 0),
            "x": round(i * bar + 1, 1),
            "width": round(bar - 2, 1),
            "height": round(counts.get(hour, 0) / peak * (CHART_HEIGHT - 20), 1),
            "y": round(CHART_HEIGHT - counts.get(hour, 0) / peak * (CHART_HEIGHT - 20), 1),
        }
        for i, hour in enumerate(hours)
    ]


def panel_context(request: HttpRequest) -> dict[str, Any]:
    """Everything the refreshed panels show (the whole page adds the admin's chrome)."""
    now = timezone.now()
    health = collect()
    after_health_check(health)
    # Every breaker that is not plainly closed, however many clients created, this service's
    # own upstreams first; then this service's closed ones (clients' closed ones are counted).
    not_closed = list(Breaker.objects.not_closed().service_first().select_related("owner"))
    closed_own = Breaker.objects.filter(owner=None).exclude(pk__in=[b.pk for b in not_closed])
    breakers = not_closed + list(closed_own.order_by("name")[:SERVICE_BREAKERS_SHOWN])
    clients_closed = Breaker.objects.exclude(owner=None).count() - sum(
        1 for b in not_closed if b.owner_id
    )
    open_breakers = [b for b in not_closed if b.effective_state != CLOSED]
    oldest_queued = Job.objects.filter(status=JobStatus.QUEUED).order_by("run_after").first()
    waiting = Job.objects.waiting_per_breaker()  # jobs held back, attempts unspent
    jobs_hour = Job.objects.status_counts(since=now - timedelta(hours=1))
    jobs_day = Job.objects.status_counts(since=now - timedelta(days=1))
    providers = health["checks"].get("providers", {}).get("providers", {})
    error_bars = _hourly_errors(now)
    # Each problem with the admin page that fixes it (or none).
    problems: list[tuple[str, str]] = [
        (
            f"breaker {b.name} is "
            + ("forced open" if b.effective_state == FORCED_OPEN else b.effective_state)
            + (f" (client {b.owner.get_username()})" if b.owner_id else "")
            + (f"; {waiting[b.name]} job(s) waiting for it" if waiting.get(b.name) else ""),
            reverse("admin:breakers_breaker_change", args=[b.pk]),
        )
        for b in open_breakers
    ]
    problems += [
        (f"provider {name} is unhealthy", "")
        for name, p in providers.items()
        if p.get("status") == "unhealthy"
    ]
    if jobs_hour["failed"] or jobs_hour["timed_out"]:
        problems.append(
            (
                f"{jobs_hour['failed']} failed and {jobs_hour['timed_out']} timed-out "
                "jobs in the last hour",
                reverse("admin:jobs_failedjob_changelist"),
            )
        )
    if health["checks"].get("workers", {}).get("clusters") == 0:
        problems.append(("no worker cluster is running", ""))
    if health["checks"]["error_spool"]["backlog_bytes"]:
        problems.append(
            (
                f"{health['checks']['error_spool']['backlog_bytes']:,} bytes of error records "
                "waiting in the local spool",
                "",
            )
        )
    if health["checks"]["database"]["status"] != "healthy":
        problems.insert(0, ("the database is unreachable", ""))
    return {
        "health": health,
        "problems": problems,
        "breakers": [(b, state_badge(b), waiting.get(b.name, 0)) for b in breakers],
        "waiting_jobs": sorted(waiting.items()),
        "clients_closed_breakers": clients_closed,
        "can_reset": request.user.has_perm("breakers.change_breaker"),
        "jobs_hour": jobs_hour,
        "jobs_day": jobs_day,
        "oldest_queued": oldest_queued,
        "oldest_queued_age": (now - oldest_queued.run_after).total_seconds()
        if oldest_queued
        else None,
        "error_bars": error_bars,
        "errors_24h": sum(bar["count"] for bar in error_bars),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "top_groups": ErrorGroup.objects.filter(last_seen__gte=now - timedelta(days=1)).order_by(
            "-count"
        )[:10],
        "providers": providers,
        "lookups": get_lookups().stats()["aggregate"],
        "lookup_thresholds": thresholds(),
        "firing_alerts": firing_alerts(),
        "timeline": timeline(),
        "provider_strips": provider_strips(),
        # Who changed which breaker last, and why (the partial index on override events).
        "last_overrides": BreakerEvent.objects.filter(kind="override")
        .select_related("breaker")
        .order_by("-created_at", "-id")[:LAST_OVERRIDES],
        "refreshed_at": now,
    }


def dashboard_view(request: HttpRequest) -> HttpResponse:
    context = {
        **admin.site.each_context(request),
        "title": "Ops dashboard",
        "refresh_seconds": settings.DASHBOARD_REFRESH_SECONDS,
        **panel_context(request),
    }
    return TemplateResponse(request, "admin/dashboard.html", context)


def dashboard_panels(request: HttpRequest) -> HttpResponse:
    """The panels alone, for the page's own refresh (admin_view guards it with the admin
    login and marks it never cached)."""
    return TemplateResponse(request, "admin/dashboard/_panels.html", panel_context(request))


@require_POST
def dashboard_reset(request: HttpRequest, name: str) -> HttpResponse:
    if not request.user.has_perm("breakers.change_breaker"):
        messages.error(request, "Resetting breakers needs the ops group.")
    else:
        try:
            override_breaker(
                name=name, action="reset", reason=request.POST.get("reason", ""), actor=request.user
            )
            messages.success(
                request, f"Breaker {name} reset. Every process follows within a second."
            )
        except UserFacingError as exc:
            messages.error(request, f"{name}: {exc.user_message}")
    return HttpResponseRedirect(reverse("ops-dashboard"))
