"""Reset, Force open and Disable as buttons on one breaker's admin page, each with a
required reason; they call ``override_breaker`` like the bulk actions, so the change is
audited the same way (a BreakerEvent with who and why, and the admin's LogEntry)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import URLPattern, path, reverse

from controlplane.breakers import actions
from controlplane.breakers.forms import OverrideForm
from controlplane.breakers.models import Breaker, BreakerState, Override
from controlplane.errors.exceptions import UserFacingError

BUTTONS: dict[str, str] = {"reset": "Reset", "force_open": "Force open", "disable": "Disable"}


def applicable(breaker: Breaker) -> dict[str, bool]:
    """Which overrides would change something: a plainly closed breaker needs no reset, a
    forced-open one no second force, a disabled one no second disable."""
    return {
        "reset": breaker.state != BreakerState.CLOSED or breaker.override != Override.NONE,
        "force_open": breaker.override != Override.FORCED_OPEN,
        "disable": breaker.override != Override.DISABLED,
    }


class BreakerPageButtons(admin.ModelAdmin):
    """Adds ``<id>/override/`` (POST, CSRF, change permission) and its form on the page."""

    change_form_template = "admin/breakers/breaker/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/override/",
                self.admin_site.admin_view(self.override_view),
                name=f"{self.opts.app_label}_{self.opts.model_name}_override",
            ),
            *super().get_urls(),
        ]

    def override_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        breaker = self.get_object(request, unquote(object_id))
        if breaker is None:
            raise Http404("No such breaker.")
        action = request.POST.get("override", "")
        form = OverrideForm(request.POST)
        if action not in BUTTONS:
            self.message_user(request, "Choose Reset, Force open or Disable.", messages.ERROR)
        elif not form.is_valid():
            problems = "; ".join(f"{field}: {' '.join(e)}" for field, e in form.errors.items())
            self.message_user(request, f"{BUTTONS[action]} not done ({problems}).", messages.ERROR)
        else:
            try:
                actions.override_breaker(
                    name=breaker.name,
                    action=action,  # type: ignore[arg-type]  # checked against BUTTONS
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                    expires_in=form.cleaned_data["expires_in"] or None,
                )
            except UserFacingError as exc:
                self.message_user(request, f"{breaker.name}: {exc.user_message}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{BUTTONS[action]}: {breaker.name}. Every process follows within a second.",
                )
        # Back to the breaker's own page: after a reset it is no longer an "open breaker".
        return HttpResponseRedirect(reverse("admin:breakers_breaker_change", args=[breaker.pk]))

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, obj: Any = None, **kw: Any
    ) -> HttpResponse:
        if obj is not None and self.has_change_permission(request, obj):
            can = applicable(obj)
            context["override_buttons"] = [
                (action, title, can[action]) for action, title in BUTTONS.items()
            ]
            context["override_form"] = OverrideForm(auto_id="override_%s")
        return super().render_change_form(request, context, *args, obj=obj, **kw)
