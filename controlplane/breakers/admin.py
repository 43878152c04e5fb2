"""Breakers in the admin: states at a glance; reset / force open / disable with a reason
(bulk actions on the lists, buttons on a breaker's page: ``breakers.admin_buttons``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.html import format_html

from controlplane.breakers import actions
from controlplane.breakers.admin_buttons import BreakerPageButtons
from controlplane.breakers.forms import OverrideForm
from controlplane.breakers.models import Breaker, BreakerEvent, OpenBreaker
from controlplane.breakers.snapshot import CLOSED, FORCED_OPEN, HALF_OPEN, OPEN
from controlplane.errors.exceptions import UserFacingError

STATE_COLOURS = {
    CLOSED: "#2e7d32",
    OPEN: "#c62828",
    FORCED_OPEN: "#c62828",
    HALF_OPEN: "#ef6c00",
}


def state_badge(breaker: Breaker) -> str:
    state = breaker.effective_state
    label = "forced open" if state == FORCED_OPEN else breaker.get_state_display()
    colour = STATE_COLOURS.get(state, "#555")
    extra = " (disabled)" if breaker.override == "disabled" else ""
    return format_html(
        '<span class="breaker-state breaker-{}" style="background:{};color:#fff;'
        'padding:2px 8px;border-radius:10px;font-weight:600">{}{}</span>',
        breaker.state,
        colour,
        label,
        extra,
    )


class BreakerEventInline(admin.TabularInline):
    model = BreakerEvent
    fields = ("created_at", "generation", "kind", "from_state", "to_state", "reason", "actor")
    readonly_fields = fields
    ordering = ("-created_at", "-id")
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).order_by("-created_at", "-id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _override_action(action: actions.OverrideAction, title: str) -> Any:
    @admin.action(permissions=["change"], description=f"{title} selected breakers")
    def run(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet) -> Any:
        form = OverrideForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            done = []
            for breaker in queryset:
                try:
                    actions.override_breaker(
                        name=breaker.name,
                        action=action,
                        reason=form.cleaned_data["reason"],
                        actor=request.user,
                        expires_in=form.cleaned_data["expires_in"] or None,
                    )
                    done.append(breaker.name)
                except UserFacingError as exc:
                    modeladmin.message_user(
                        request, f"{breaker.name}: {exc.user_message}", messages.ERROR
                    )
            if done:
                modeladmin.message_user(
                    request, f"{title}: {', '.join(done)}. Every process follows within a second."
                )
            return None
        return TemplateResponse(
            request,
            "admin/breakers/override.html",
            {
                **modeladmin.admin_site.each_context(request),
                "title": f"{title} breakers",
                "action": run.__name__,
                "action_title": title,
                "breakers": queryset,
                "form": form,
                "opts": modeladmin.model._meta,
            },
        )

    run.__name__ = f"{action}_breakers"
    return run


class BreakerAdmin(BreakerPageButtons):
    list_display = (
        "name",
        "owner",
        "badge",
        "consecutive_failures",
        "total_failures",
        "open_until",
        "override",
        "override_reason",
        "generation",
    )
    list_filter = ("state", "override")
    search_fields = ("name",)
    # This service's own upstreams first (no owner), then clients' breakers: a crowd of client
    # breakers whose names sort first cannot push a real upstream off the first page.
    ordering = (F("owner").asc(nulls_first=True), "name")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    show_facets = admin.ShowFacets.NEVER
    inlines = [BreakerEventInline]
    actions = [
        _override_action("reset", "Reset"),
        _override_action("force_open", "Force open"),
        _override_action("disable", "Disable"),
    ]
    readonly_fields = (
        "name",
        "badge",
        "state",
        "generation",
        "consecutive_failures",
        "total_failures",
        "opened_at",
        "open_until",
        "override",
        "override_by",
        "override_reason",
        "override_at",
        "override_expires_at",
        "reopen_count",
    )
    fieldsets = (
        (
            "State",
            {
                "fields": (
                    "name",
                    "badge",
                    "generation",
                    "consecutive_failures",
                    "total_failures",
                    "opened_at",
                    "open_until",
                    "reopen_count",
                )
            },
        ),
        ("Owner (a client's breaker; empty: this service's)", {"fields": ("owner",)}),
        (
            "Override",
            {
                "fields": (
                    "override",
                    "override_by",
                    "override_reason",
                    "override_at",
                    "override_expires_at",
                )
            },
        ),
        (
            "Policy (takes effect in every process within BREAKER_SNAPSHOT_TTL)",
            {
                "fields": (
                    "policy",
                    "failure_threshold",
                    "window_seconds",
                    "failure_rate_threshold",
                    "minimum_calls",
                    "cooldown_seconds",
                    "cooldown_growth",
                    "max_cooldown_seconds",
                    "half_open_max_probes",
                    "half_open_successes",
                    "probe_lease_seconds",
                    "fail_open",
                )
            },
        ),
    )

    @admin.display(description="state", ordering="state")
    def badge(self, breaker: Breaker) -> str:
        return state_badge(breaker)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # breakers are created on first use

    def save_model(self, request: HttpRequest, obj: Breaker, form: Any, change: bool) -> None:
        # Only policy fields and the owner are editable; never write state columns from a
        # stale form.
        policy = [f for f in form.changed_data if f not in self.readonly_fields]
        if policy:
            obj.save(update_fields=policy)


admin.site.register(Breaker, BreakerAdmin)


@admin.register(OpenBreaker)
class OpenBreakerAdmin(BreakerAdmin):
    pass
