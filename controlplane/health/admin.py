"""Alerts in the admin: channels edited by ops (the secret write-only), events and
deliveries read-only, with the attempts and response codes of every delivery."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from controlplane.health.models import AlertChannel, AlertDelivery, AlertEvent
from controlplane.lib.pagination import EstimatedCountPaginator


class AlertChannelForm(forms.ModelForm):
    # Write-only: never rendered back; left empty on a change, the stored secret stays.
    new_secret = forms.CharField(
        label="Secret",
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="HMAC-SHA256 key for webhook signatures. Leave empty to keep the current one.",
    )
    clear_secret = forms.BooleanField(required=False, help_text="Send unsigned from now on.")

    class Meta:
        model = AlertChannel
        fields = ("name", "kind", "target", "enabled", "max_per_hour", "events")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A webhook URL is a credential (a Slack one is all it takes to post): like the
        # secret, the stored one is never rendered back, only where it points.
        if self.instance.pk and self.instance.kind != AlertChannel.EMAIL:
            self.initial["target"] = ""
            field = self.fields["target"]
            field.required = False
            field.help_text = (
                f"Now {masked_target(self.instance)} (not shown in full). "
                "Leave empty to keep it; enter a URL to replace it."
            )

    def clean_target(self) -> str:
        target = self.cleaned_data.get("target", "")
        if not target and self.instance.pk:
            return self.instance.target
        return target

    def save(self, commit: bool = True) -> AlertChannel:
        channel = super().save(commit=False)
        if self.cleaned_data.get("new_secret"):
            channel.secret = self.cleaned_data["new_secret"]
        elif self.cleaned_data.get("clear_secret"):
            channel.secret = ""
        if commit:
            channel.save()
        return channel


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm
    list_display = ("name", "kind", "short_target", "enabled", "signed", "max_per_hour", "source")
    list_filter = ("kind", "enabled")
    readonly_fields = ("source", "signed")
    fieldsets = (
        (None, {"fields": ("name", "kind", "target", "enabled")}),
        ("Signing", {"fields": ("signed", "new_secret", "clear_secret")}),
        ("What and how much", {"fields": ("events", "max_per_hour", "source")}),
    )

    @admin.display(boolean=True, description="signed")
    def signed(self, channel: AlertChannel) -> bool:
        return bool(channel.secret)

    @admin.display(description="target")
    def short_target(self, channel: AlertChannel) -> str:
        return masked_target(channel)


def masked_target(channel: AlertChannel) -> str:
    """Where a channel points, without what lets anyone post there: email addresses as they
    are; for a URL its scheme and host only (no user:password@, no path: a Slack webhook's
    path is its token)."""
    if channel.kind == AlertChannel.EMAIL:
        return channel.target
    try:
        parts = urlsplit(channel.target.strip())
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "…"
    if not parts.scheme or not parts.hostname:
        return "…"
    return f"{parts.scheme}://{parts.hostname}{port}/…"


class ReadOnly(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


class DeliveryInline(admin.TabularInline):
    model = AlertDelivery
    fk_name = "event"
    fields = ("channel", "status", "attempts", "response_codes", "last_error", "sent_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnly):
    list_display = ("created_at", "kind", "subject", "status", "summary", "resolved_at")
    list_filter = ("status", "kind")
    search_fields = ("=subject",)
    search_help_text = "An exact subject: a breaker or provider name, an error fingerprint."
    ordering = ("-created_at", "-id")
    readonly_fields = (
        "kind",
        "subject",
        "status",
        "summary",
        "details",
        "dedup_key",
        "created_at",
        "resolved_at",
    )
    inlines = [DeliveryInline]


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnly):
    list_display = (
        "created_at",
        "event_summary",
        "channel",
        "status",
        "attempts",
        "codes",
        "sent_at",
    )
    list_filter = ("status", "channel")
    list_select_related = ("event", "channel")
    raw_id_fields = ("event", "digest")
    ordering = ("-created_at", "-id")
    readonly_fields = (
        "event",
        "channel",
        "status",
        "attempts",
        "codes",
        "last_response_code",
        "last_error",
        "started_at",
        "sent_at",
        "digest",
        "created_at",
        "updated_at",
    )

    @admin.display(description="event")
    def event_summary(self, delivery: AlertDelivery) -> str:
        return format_html("{} <small>({})</small>", delivery.event.summary, delivery.event.kind)

    @admin.display(description="response codes")
    def codes(self, delivery: AlertDelivery) -> str:
        return ", ".join(str(code) for code in delivery.response_codes) or "-"
