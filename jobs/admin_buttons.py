"""Cancel and Retry now as buttons on one job's admin page, and the single-job steps the
list's bulk actions share with them: the change and its admin LogEntry in one transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.urls import URLPattern, path, reverse

from controlplane.errors.exceptions import UserFacingError
from jobs import actions
from jobs.models import Job, JobStatus

CANCELLABLE = (JobStatus.QUEUED, JobStatus.RUNNING)
RETRYABLE = (JobStatus.FAILED, JobStatus.TIMED_OUT)


def cancel_and_log(modeladmin: admin.ModelAdmin, request: HttpRequest, job_id: uuid.UUID) -> str:
    """Request the cancel and log it; "cancelled" (it was queued) or "stopping" (running).
    Raises the action's UserFacingError (409 JOB_NOT_CANCELLABLE) for a finished job."""
    with transaction.atomic():  # the change and its admin log entry, or neither
        cancelled = actions.cancel_job(job_id=job_id, actor=request.user)
        state = "cancelled" if cancelled.status == JobStatus.CANCELLED else "stopping"
        modeladmin.log_change(request, cancelled, f"Cancel requested ({state}).")
    return state


def retry_and_log(modeladmin: admin.ModelAdmin, request: HttpRequest, job_id: uuid.UUID) -> bool:
    """Re-queue a failed or timed-out job with fresh attempts and log it; False (nothing
    written) when it is in any other state."""
    with transaction.atomic():  # the change and its admin log entry, or neither
        retried = actions.retry_job(job_id=job_id, actor=request.user)
        if retried:
            modeladmin.log_change(request, retried, "Re-queued now (fresh attempts).")
    return retried is not None


class JobPageButtons(admin.ModelAdmin):
    """Adds ``<id>/cancel/`` and ``<id>/retry/`` (POST, CSRF, change permission) and shows
    them as buttons on the job's page, disabled when they cannot apply."""

    change_form_template = "admin/jobs/job/change_form.html"

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name=f"{name}_cancel",
            ),
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(self.retry_view),
                name=f"{name}_retry",
            ),
            *super().get_urls(),
        ]

    def _job_for_button(self, request: HttpRequest, object_id: str) -> Job:
        if not self.has_change_permission(request):  # the model's, as for the bulk actions
            raise PermissionDenied
        job = self.get_object(request, unquote(object_id))
        if job is None:
            raise Http404("No such job.")
        return job

    def _back(self, job: Job) -> HttpResponse:
        # The job's own page: a cancelled job is no longer on the running list's pages.
        return HttpResponseRedirect(reverse("admin:jobs_job_change", args=[job.pk]))

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = self._job_for_button(request, object_id)
        try:
            state = cancel_and_log(self, request, job.pk)
        except UserFacingError as exc:
            self.message_user(request, exc.user_message, messages.ERROR)
        else:
            self.message_user(request, f"Cancel requested for job {job.pk} ({state}).")
        return self._back(job)

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        job = self._job_for_button(request, object_id)
        if retry_and_log(self, request, job.pk):
            self.message_user(request, f"Job {job.pk} re-queued now with fresh attempts.")
        else:
            self.message_user(
                request,
                f"Job {job.pk} was not re-queued: only failed or timed-out jobs can be.",
                messages.WARNING,
            )
        return self._back(job)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, obj: Any = None, **kw: Any
    ) -> HttpResponse:
        if obj is not None and self.has_change_permission(request):
            context["job_buttons"] = {
                "cancel": obj.status in CANCELLABLE and obj.cancel_requested_at is None,
                "cancel_requested": obj.cancel_requested_at is not None and not obj.is_terminal,
                "retry": obj.status in RETRYABLE,
            }
        return super().render_change_form(request, context, *args, obj=obj, **kw)
