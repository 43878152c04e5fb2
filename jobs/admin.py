"""Jobs in the admin: status and progress at a glance, cancel and retry for ops (bulk
actions on the lists, buttons on a job's page: ``jobs.admin_buttons``).

The job page never writes back what it loaded: a running or finished job's page is
view-only, and on a queued job ops may change only ``max_attempts``, written by a
conditional UPDATE (``Job.set_max_attempts``) that loses to a worker's claim.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from controlplane.errors.exceptions import UserFacingError, reference_text
from controlplane.errors.scrubbing import default_scrubber
from controlplane.lib.pagination import EstimatedCountPaginator
from controlplane.lib.uuids import find_uuid
from jobs import actions
from jobs.admin_buttons import JobPageButtons, cancel_and_log, retry_and_log
from jobs.models import (
    FailedJob,
    Job,
    JobEvent,
    JobStatus,
    RunningJob,
    WaitingJob,
)

EDITABLE_WHILE_QUEUED = ("max_attempts",)


def _scrubbed_json(value: object) -> str:
    text = json.dumps(default_scrubber().scrub(value), indent=2, sort_keys=True)
    if len(text) > 20_000:
        text = text[:20_000] + "\n…[truncated]"
    return format_html("<pre style='white-space:pre-wrap'>{}</pre>", text)


STATUS_COLOURS = {
    "queued": "#546e7a",
    "running": "#1565c0",
    "succeeded": "#2e7d32",
    "failed": "#c62828",
    "cancelled": "#6d4c41",
    "timed_out": "#ef6c00",
}


class JobEventInline(admin.TabularInline):
    model = JobEvent
    fields = ("created_at", "from_status", "to_status", "attempt", "message", "actor")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class JobForm(forms.ModelForm):
    class Meta:
        model = Job
        fields = EDITABLE_WHILE_QUEUED
        help_texts = {
            "max_attempts": "Runs allowed in all. Editable only while the job is queued; "
            "if a worker claims it first, the change is refused and nothing is written."
        }

    def clean_max_attempts(self) -> int:
        value = self.cleaned_data["max_attempts"]
        done, limit = self.instance.attempts, actions.MAX_ATTEMPTS_LIMIT
        if not done < value <= limit:
            raise forms.ValidationError(
                f"Between {done + 1} (one more than the runs it has had) and {limit}."
            )
        return value


@admin.register(Job)
class JobAdmin(JobPageButtons):
    form = JobForm
    list_display = (
        "id",
        "kind",
        "badge",
        "progress_bar",
        "attempts",
        "micro_id",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "kind")
    search_fields = ("id",)
    search_help_text = "A job id, an Idempotency-Key, or the support UUID of its error (exact)."
    ordering = ("-created_at",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_select_related = ("created_by",)
    raw_id_fields = ("created_by",)
    inlines = [JobEventInline]
    actions = ["cancel_jobs", "retry_jobs"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "kind",
                    "badge",
                    "progress_bar",
                    "progress_message",
                    "attempts",
                    "max_attempts",
                    "micro_id",
                    "micro_uuid",
                    "created_by",
                    "idempotency_key",
                )
            },
        ),
        (
            "Timing",
            {
                "fields": (
                    "created_at",
                    "started_at",
                    "finished_at",
                    "timeout_seconds",
                    "timeout_at",
                    "deadline_seconds",
                    "deadline_at",
                    "run_after",
                    "waiting_for",
                    "waiting_breakers",
                    "heartbeat_at",
                    "lease_expires_at",
                    "worker",
                    "cancel_requested_at",
                )
            },
        ),
        (
            "Outcome",
            {
                "fields": (
                    "result_block",
                    "result_url",
                    "error_code",
                    "client_message",
                    "error_block",
                    "error_link",
                )
            },
        ),
        ("Payload (scrubbed)", {"fields": ("payload_block",)}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        shown = [f for fieldset in self.fieldsets for f in fieldset[1]["fields"]]
        if obj is not None and obj.status == JobStatus.QUEUED:
            return [f for f in shown if f not in EDITABLE_WHILE_QUEUED]
        return shown

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only a queued job's page can be saved; a running or finished one is view-only
        (its status, claim and lease belong to the worker). The actions need no object."""
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or obj.status == JobStatus.QUEUED)

    def save_model(self, request: HttpRequest, obj: Job, form: Any, change: bool) -> None:
        """Write only what ops changed, conditionally; never ``obj.save()``."""
        obj.edit_lost = False
        if "max_attempts" in form.changed_data:
            obj.edit_lost = not obj.set_max_attempts(form.cleaned_data["max_attempts"])

    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(obj, "edit_lost", False):
            return None  # nothing was written, so nothing to log
        return super().log_change(request, obj, message)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        if not getattr(obj, "edit_lost", False):
            return super().response_change(request, obj)
        now = Job.objects.filter(pk=obj.pk).values("status", "attempts").first() or {}
        self.message_user(
            request,
            f"Job {obj.pk} was not changed: it is no longer queued with fewer runs than "
            f"that (now {now.get('status', 'deleted')}, {now.get('attempts', 0)} runs).",
            messages.ERROR,
        )
        return HttpResponseRedirect(request.path)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are created through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_superuser)

    @admin.display(description="status", ordering="status")
    def badge(self, job: Job) -> str:
        return format_html(
            '<span class="job-status job-{}" style="background:{};color:#fff;padding:2px 8px;'
            'border-radius:10px;font-weight:600">{}</span>',
            job.status,
            STATUS_COLOURS.get(job.status, "#555"),
            job.get_status_display(),
        )

    @admin.display(description="progress")
    def progress_bar(self, job: Job) -> str:
        return format_html(
            '<progress value="{}" max="100" title="{}%"></progress> {}%',
            job.progress,
            job.progress,
            job.progress,
        )

    @admin.display(description="error record")
    def error_link(self, job: Job) -> str:
        if not job.error_support_id:
            return "—"
        url = reverse("admin:errors_errorrecord_changelist") + f"?q={job.error_support_id}"
        return format_html('<a href="{}">{}</a>', url, job.error_support_id)

    @admin.display(description="payload")
    def payload_block(self, job: Job) -> str:
        return _scrubbed_json(job.payload)

    @admin.display(description="result")
    def result_block(self, job: Job) -> str:
        return _scrubbed_json(job.result)

    @admin.display(description="message the client reads")
    def client_message(self, job: Job) -> str:
        if not job.error_user_message:
            return "—"
        if job.error_support_id:
            return reference_text(job.error_user_message, job.error_support_id)
        return job.error_user_message

    @admin.display(description="technical error (support only)")
    def error_block(self, job: Job) -> str:
        # Stored scrubbed since it was written so; older rows are scrubbed when shown.
        return default_scrubber().text(job.error_message) or "—"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        value = find_uuid(term)
        if value is not None:
            by_id = queryset.filter(pk=value)
            if by_id.exists():
                return by_id, False
            return queryset.filter(error_support_id=value), False
        return queryset.filter(idempotency_key=term), False

    @admin.action(permissions=["change"], description="Cancel selected jobs")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        done, skipped = [], []
        for job_id, status in queryset.values_list("id", "status"):
            try:
                done.append(f"{job_id} ({cancel_and_log(self, request, job_id)})")
            except UserFacingError:
                skipped.append(f"{job_id} ({status})")
        self._report(request, "Cancel requested for", done, "already finished", skipped)

    @admin.action(permissions=["change"], description="Retry now (failed / timed out)")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet) -> None:
        done, skipped = [], []
        for job_id in queryset.values_list("id", flat=True):
            (done if retry_and_log(self, request, job_id) else skipped).append(str(job_id))
        self._report(request, "Re-queued", done, "not failed or timed out", skipped)

    def _report(
        self, request: HttpRequest, did: str, done: list[str], why: str, skipped: list[str]
    ) -> None:
        """One message for what an action did, one warning for what it skipped and why."""
        if done:
            self.message_user(request, f"{did} {len(done)}: " + ", ".join(done))
        if skipped:
            self.message_user(
                request, f"Skipped {len(skipped)} {why}: " + ", ".join(skipped), messages.WARNING
            )


@admin.register(FailedJob)
class FailedJobAdmin(JobAdmin):
    list_filter = ("kind", "error_code")


@admin.register(RunningJob)
class RunningJobAdmin(JobAdmin):
    list_display = (
        "id",
        "kind",
        "badge",
        "progress_bar",
        "attempts",
        "worker",
        "heartbeat_at",
        "timeout_at",
    )
    list_filter = ("kind",)


class WaitingForBreakerFilter(admin.SimpleListFilter):
    """One choice per breaker that jobs wait for, with how many (from the partial index)."""

    title = "waiting for breaker"
    parameter_name = "breaker"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        counts = Job.objects.waiting_per_breaker()
        return [(name, f"{name} ({n})") for name, n in sorted(counts.items())]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(waiting_breakers__contains=[self.value()])
        return queryset


@admin.register(WaitingJob)
class WaitingJobAdmin(JobAdmin):
    """Queued jobs held back by an open breaker (or every breaker of a provider group),
    their attempts not spent; they run when any of those breakers permits again (a reset
    wakes them within a maintenance pass)."""

    list_display = (
        "id",
        "kind",
        "waiting_for",
        "run_after",
        "deadline_at",
        "attempts",
        "created_at",
    )
    list_filter = (WaitingForBreakerFilter, "kind")
    ordering = ("run_after",)
