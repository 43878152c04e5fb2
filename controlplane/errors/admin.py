"""Admin for support staff: paste a support UUID, see the whole story.

Built for tables of millions of rows: search only by indexed keys (exact
UUID, UUID prefix via a range scan, exact code), estimated counts, no facets.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from controlplane.errors import spool
from controlplane.errors.exceptions import reference_text
from controlplane.errors.models import ErrorGroup, ErrorRecord
from controlplane.errors.tracelinks import trace_url
from controlplane.lib.correlation import sane_request_id
from controlplane.lib.pagination import EstimatedCountPaginator
from controlplane.lib.uuids import UUID_PATTERN, find_uuids

_PREFIX = re.compile(r"^[0-9a-fA-F-]{8,36}$")
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# "(Reference: <uuid>)", as every message ends: that UUID is the record, whatever other UUIDs
# (a job's, a micro-service's) the message names before it.
_REFERENCE = re.compile(rf"(?i)\breference\b[^0-9a-f]{{0,4}}({UUID_PATTERN})")
MIN_PREFIX = 8


def parse_support_query(text: str) -> tuple[str, Any]:
    """What a pasted search means.

    Returns ("uuid", UUID), ("uuids", [UUID, ...]), ("prefix", (low, high)), ("code", str)
    or ("none", None). A UUID may come with or without dashes, inside any text: the one
    after "Reference" wins; several UUIDs without a reference list every record they name.
    """
    text = text.strip()
    referenced = _REFERENCE.search(text)
    if referenced:
        return "uuid", uuid.UUID(referenced.group(1).replace("-", ""))
    found = find_uuids(text)
    if len(found) == 1:
        return "uuid", found[0]
    if found:
        return "uuids", found
    compact = text.replace("-", "")
    if _PREFIX.match(text) and MIN_PREFIX <= len(compact) <= 32:
        # A UUID prefix is a range on the unique index: [prefix000..., prefixfff...].
        low = uuid.UUID(compact.ljust(32, "0"))
        high = uuid.UUID(compact.ljust(32, "f"))
        return "prefix", (low, high)
    if _CODE.match(text):
        return "code", text.upper()
    return "none", None


class CodeFilter(admin.SimpleListFilter):
    """Codes come from the small groups table, not a DISTINCT over millions of records."""

    title = "code"
    parameter_name = "code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        codes = ErrorGroup.objects.order_by("code").values_list("code", flat=True).distinct()
        return [(code, code) for code in codes[:200]]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(code=self.value()) if self.value() else queryset


class ServiceFilter(CodeFilter):
    title = "service"
    parameter_name = "service"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        services = (
            ErrorGroup.objects.exclude(service="")
            .order_by("service")
            .values_list("service", flat=True)
            .distinct()
        )
        return [(service, service) for service in services[:200]]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(service=self.value()) if self.value() else queryset


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records are written by the system; nobody edits them in the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)


@admin.register(ErrorRecord)
class ErrorRecordAdmin(ReadOnlyAdmin):
    list_display = ("support_id", "code", "http_status", "service", "short_path", "created_at")
    list_display_links = ("support_id",)
    list_filter = (CodeFilter, ServiceFilter)
    search_fields = ("support_id",)  # enables the box; get_search_results does the work
    search_help_text = (
        "Paste a support UUID (with or without dashes, or the whole "
        "'(Reference: …)' text or the whole message), an 8+ character UUID prefix, an exact "
        "error code, or a trace id or X-Request-Id from a log line or an upstream."
    )
    date_hierarchy = None
    ordering = ("-created_at",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    fieldsets = (
        (
            "What the user saw",
            {"fields": ("support_id", "shown_message", "http_status", "code", "type")},
        ),
        (
            "What happened",
            {"fields": ("technical_message", "service", "exception_type", "traceback_block")},
        ),
        (
            "Request",
            {
                "fields": (
                    "request_method",
                    "request_path",
                    "request_id",
                    "trace_link",
                    "span_id",
                    "user_link",
                    "api_client",
                    "context_block",
                )
            },
        ),
        (
            "Related",
            {
                "fields": (
                    "job_link",
                    "breaker_name",
                    "breaker_state",
                    "group_summary",
                    "same_group",
                )
            },
        ),
        (
            "When, and how it was kept",
            {"fields": ("occurred_at", "created_at", "fingerprint", "how_kept")},
        ),
    )
    readonly_fields = (
        "support_id",
        "shown_message",
        "http_status",
        "code",
        "type",
        "technical_message",
        "service",
        "exception_type",
        "traceback_block",
        "request_method",
        "request_path",
        "request_id",
        "trace_link",
        "span_id",
        "user_link",
        "api_client",
        "context_block",
        "job_link",
        "breaker_name",
        "breaker_state",
        "group_summary",
        "same_group",
        "occurred_at",
        "created_at",
        "fingerprint",
        "how_kept",
    )

    @admin.display(description="kept as")
    def how_kept(self, record: ErrorRecord) -> str:
        notes = []
        if record.reported:
            notes.append("reported by a client")
        if record.anonymous:
            notes.append(
                f"no authenticated user (kept {settings.ERROR_ANONYMOUS_RETENTION_DAYS} days)"
            )
        if record.compact:
            notes.append("compact: its source was past its full records for the minute")
        return "; ".join(notes) or "a full record"

    @admin.display(description="path")
    def short_path(self, record: ErrorRecord) -> str:
        return record.request_path[:60]

    @admin.display(description="message shown")
    def shown_message(self, record: ErrorRecord) -> str:
        return reference_text(record.user_message, record.support_id)

    @admin.display(description="traceback")
    def traceback_block(self, record: ErrorRecord) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", record.traceback or "—")

    @admin.display(description="context (scrubbed)")
    def context_block(self, record: ErrorRecord) -> str:
        text = json.dumps(record.context, indent=2, sort_keys=True, ensure_ascii=False)
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)

    @admin.display(description="trace id")
    def trace_link(self, record: ErrorRecord) -> str:
        if not record.trace_id:
            return "—"
        url = trace_url(record.trace_id)
        if not url:
            return record.trace_id
        return format_html('<a href="{}" rel="noopener">{}</a>', url, record.trace_id)

    @admin.display(description="user")
    def user_link(self, record: ErrorRecord) -> str:
        if not record.user_id:
            return "anonymous"
        url = reverse("admin:auth_user_change", args=[record.user_id])
        return format_html('<a href="{}">{}</a>', url, record.username or record.user_id)

    @admin.display(description="job")
    def job_link(self, record: ErrorRecord) -> str:
        if not record.job_id:
            return "—"
        url = reverse("admin:jobs_job_change", args=[record.job_id])
        return format_html('<a href="{}">{}</a>', url, record.job_id)

    @admin.display(description="group")
    def group_summary(self, record: ErrorRecord) -> str:
        group = ErrorGroup.objects.filter(fingerprint=record.fingerprint).first()
        if group is None:
            return "—"
        url = reverse("admin:errors_errorgroup_change", args=[group.pk])
        return format_html(
            '<a href="{}">{} occurrences</a>, first {}, last {}',
            url,
            group.count,
            group.first_seen,
            group.last_seen,
        )

    @admin.display(description="latest in the same group")
    def same_group(self, record: ErrorRecord) -> str:
        others = (
            ErrorRecord.objects.filter(fingerprint=record.fingerprint)
            .exclude(pk=record.pk)
            .order_by("-created_at")
            .values_list("pk", "support_id", "created_at")[:10]
        )
        if not others:
            return "none"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li><a href="{}">{}</a> {}</li>',
                (
                    (reverse("admin:errors_errorrecord_change", args=[pk]), sid, at)
                    for pk, sid, at in others
                ),
            ),
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        if not search_term.strip():
            return queryset, False
        kind, value = parse_support_query(search_term)
        if kind == "uuid":
            # 32 hex digits are also a trace id, and request ids are often UUIDs: each of
            # the three is an indexed equality.
            named = Q(support_id=value) | Q(trace_id=value.hex) | Q(request_id=str(value))
            return queryset.filter(named), False
        if kind == "uuids":
            return queryset.filter(support_id__in=value), False
        if kind == "prefix":
            low, high = value
            return queryset.filter(support_id__gte=low, support_id__lte=high), False
        term = search_term.strip()
        if kind == "code":
            return queryset.filter(Q(code=value) | Q(request_id=term)), False
        if sane_request_id(term):
            return queryset.filter(request_id=term), False
        return queryset.none(), False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        term = request.GET.get("q", "")
        kind, value = parse_support_query(term) if term else ("none", None)
        if kind == "uuid":
            # A full UUID lands on the record in one step.
            pk = ErrorRecord.objects.filter(support_id=value).values_list("pk", flat=True).first()
            if pk is not None:
                return HttpResponseRedirect(reverse("admin:errors_errorrecord_change", args=[pk]))
            if spool.find(str(value)) is not None:
                messages.warning(
                    request,
                    f"{value} was recorded while the database was unavailable and is waiting "
                    "in this server's spool; it appears here once replayed "
                    "(manage.py replay_error_spool).",
                )
            elif not ErrorRecord.objects.filter(
                Q(trace_id=value.hex) | Q(request_id=str(value))
            ).exists():
                messages.info(request, f"No error record with support id {value}.")
            else:
                # Request ids come from callers: say these are not the reference itself.
                messages.info(
                    request,
                    f"No error record with support id {value}; listed: the records whose "
                    "trace id or request id (sent by the caller) it is.",
                )
        elif term and kind == "none" and not sane_request_id(term.strip()):
            messages.info(
                request,
                "Search takes a support UUID, an 8+ character UUID prefix, an exact error code, "
                "a trace id or a request id.",
            )
        return super().changelist_view(request, extra_context)


@admin.register(ErrorGroup)
class ErrorGroupAdmin(ReadOnlyAdmin):
    list_display = ("code", "service", "count", "first_seen", "last_seen", "latest_link")
    ordering = ("-last_seen",)
    search_fields = ("code",)
    search_help_text = "Exact error code."
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    readonly_fields = (
        "fingerprint",
        "code",
        "service",
        "count",
        "first_seen",
        "last_seen",
        "latest_link",
    )
    fields = readonly_fields

    @admin.display(description="latest record")
    def latest_link(self, group: ErrorGroup) -> str:
        url = reverse("admin:errors_errorrecord_changelist") + f"?q={group.latest_support_id}"
        return format_html('<a href="{}">{}</a>', url, group.latest_support_id)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        return (queryset.filter(code=term.upper()), False) if term else (queryset, False)
