"""Registry admin, the lookup stats page, cache warming and clearing for every process, the
per-slug figures and the audit of clears."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from controlplane.lib.uuids import exact_uuid
from lookups.clearing import clear_everywhere
from lookups.models import CacheClear, MicroService, SlugStats
from lookups.resolver import get_lookups
from lookups.warming import warm_everywhere


def _warm_message(result: dict[str, Any]) -> str:
    parts = [f"{r['process']}: {r['warmed']}" for r in result["reports"]]
    return f"Warmed {len(parts)} process(es) — " + "; ".join(parts)


def _clear_message(result: dict[str, Any]) -> str:
    parts = [f"{r['process']}: {r['cleared']}" for r in result["reports"]]
    return f"Cleared the lookup cache of {len(parts)} process(es) — " + "; ".join(parts)


@admin.register(MicroService)
class MicroServiceAdmin(admin.ModelAdmin):
    list_display = ("slug", "uuid", "name", "active", "updated_at")
    list_filter = ("active",)
    search_fields = ("slug",)
    search_help_text = "A slug (or its beginning), or an exact UUID."
    readonly_fields = ("created_at", "updated_at")
    show_facets = admin.ShowFacets.NEVER
    actions = ["warm_cache"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        value = exact_uuid(term)
        if value is not None:
            return queryset.filter(uuid=value), False
        return queryset.filter(slug__startswith=term.lower()), False

    @admin.action(permissions=["change"], description="Warm lookup cache (every process)")
    def warm_cache(self, request: HttpRequest, queryset: QuerySet) -> None:
        slugs = list(queryset.values_list("slug", flat=True))
        result = warm_everywhere(get_lookups(), slugs=slugs)
        self.message_user(request, _warm_message(result), messages.SUCCESS)

    def get_urls(self) -> list[Any]:
        return [
            path("stats/", self.admin_site.admin_view(self.stats_view), name="lookups_stats"),
            *super().get_urls(),
        ]

    def stats_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponseRedirect(reverse("admin:index"))
        if request.method == "POST":
            clear = request.POST.get("operation") == "clear"
            if not self.has_change_permission(request):
                messages.error(
                    request, f"{'Clearing' if clear else 'Warming'} the cache needs the ops group."
                )
            elif clear:
                result = clear_everywhere(get_lookups(), actor=request.user, via="admin")
                messages.success(request, _clear_message(result))
            else:
                messages.success(request, _warm_message(warm_everywhere(get_lookups())))
            return HttpResponseRedirect(reverse("admin:lookups_stats"))
        return TemplateResponse(
            request,
            "admin/lookups/stats.html",
            {
                **self.admin_site.each_context(request),
                "title": "Lookup cache statistics",
                "stats": get_lookups().stats(),
                "can_warm": self.has_change_permission(request),
                "opts": self.model._meta,
            },
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        extra = {**(extra_context or {}), "stats_url": reverse("admin:lookups_stats")}
        return super().changelist_view(request, extra)


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the service writes (figures, audit): shown, never edited in the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SlugStats)
class SlugStatsAdmin(_ReadOnlyAdmin):
    """Per-slug figures summed over every process (read-only; at most LOOKUP_SLUG_STATS_MAX)."""

    list_display = ("slug", "hits", "misses", "fallbacks", "last_seen")
    ordering = ("-misses", "-fallbacks", "slug")
    search_fields = ("slug",)
    search_help_text = "A slug or its beginning."
    show_facets = admin.ShowFacets.NEVER

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip().lower()
        return (queryset.filter(slug__startswith=term) if term else queryset), False


@admin.register(CacheClear)
class CacheClearAdmin(_ReadOnlyAdmin):
    """Who cleared the lookup cache of every process, how and when, and who answered."""

    list_display = ("created_at", "requested_by_name", "via", "processes")
    list_filter = ("via",)
    readonly_fields = ("request_id", "requested_by_name", "via", "created_at", "answers")
    fields = readonly_fields
    show_facets = admin.ShowFacets.NEVER

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("reports")

    @admin.display(description="processes that cleared")
    def processes(self, obj: CacheClear) -> int:
        return len(obj.reports.all())

    @admin.display(description="answers (process: entries dropped)")
    def answers(self, obj: CacheClear) -> str:
        return "; ".join(f"{r.process}: {r.cleared}" for r in obj.reports.all()) or "none"
