"""Job workflows used by the API and the admin: create, cancel, retry, read."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.functions import Now

from controlplane.errors.exceptions import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UserFacingError,
    ValidationError,
)
from controlplane.lib.permissions import in_groups
from jobs import lifecycle, registry
from jobs.maintenance import time_out_overdue
from jobs.models import Job, JobEvent
from jobs.queue import dispatch_on_commit
from lookups.exceptions import InvalidSlugError
from lookups.resolver import get_lookups

logger = logging.getLogger("controlplane.jobs")
MAX_ATTEMPTS_LIMIT = 10


def max_timeout_seconds() -> int:
    """django-q2 must be able to hold a task this long (its timeout) without redelivering it."""
    return settings.Q_CLUSTER["timeout"] - settings.JOB_TIMEOUT_GRACE_SECONDS


def create_job(
    *,
    kind: str,
    payload: dict[str, Any],
    created_by: Any = None,
    micro_id: str = "",
    timeout_seconds: int | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Create and enqueue a job; returns (job, created). A repeated idempotency key returns
    the first job (or 409 if it was used for a different request).

    Once the job is committed this returns it as created, whatever the queue does: a
    failed hand-off to django-q2 is left to maintenance (``jobs.queue``), never reported
    as an error a client would retry into a second job."""
    if registry.get_handler(kind) is None:
        raise ValidationError(
            f"Unknown job kind {kind!r}.",
            code="UNKNOWN_JOB_KIND",
            metadata={"kinds": registry.kinds()},
        )
    groups = registry.allowed_groups(kind)
    if groups and created_by is not None and not in_groups(created_by, *groups):
        raise ForbiddenError(
            f"Jobs of kind {kind!r} need the {' or '.join(groups)} group.",
            code="JOB_KIND_FORBIDDEN",
        )
    registry.validate_payload(kind, payload)
    timeout_seconds = timeout_seconds or settings.JOB_TIMEOUT_SECONDS
    if not 1 <= timeout_seconds <= max_timeout_seconds():
        raise ValidationError(
            f"timeout_seconds must be between 1 and {max_timeout_seconds()}.",
            code="INVALID_TIMEOUT",
        )
    max_attempts = max_attempts or settings.JOB_MAX_ATTEMPTS
    owner = created_by if getattr(created_by, "pk", None) else None
    if idempotency_key:
        existing = _by_key(owner, idempotency_key)
        if existing is not None:
            return _same_request(existing, kind, payload), False

    micro_uuid, micro_note = None, ""
    if micro_id:
        try:
            found = get_lookups().lookup(micro_id)
        except InvalidSlugError:
            raise
        except UserFacingError as exc:  # not found / database trouble: go on slug-only
            micro_note = (
                f"micro_id {micro_id!r} unresolved ({exc.code}); continuing with the slug only"
            )
        else:
            micro_uuid = found.uuid
            if found.fallback_used:
                micro_note = f"micro_id {micro_id!r} not resolved (lookup fallback); slug only"

    job = Job(
        kind=kind,
        payload=payload,
        created_by=created_by if getattr(created_by, "pk", None) else None,
        micro_id=micro_id,
        micro_uuid=micro_uuid,
        timeout_seconds=timeout_seconds,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key or None,
        dispatched_at=Now(),
    )
    try:
        with transaction.atomic():
            job.save(force_insert=True)
            JobEvent.objects.create(
                job=job,
                from_status="",
                to_status="queued",
                message="created" + (f"; {micro_note}" if micro_note else ""),
                actor=created_by.get_username() if getattr(created_by, "pk", None) else "",
            )
            job.refresh_from_db()  # now: after the commit, only the hand-off to the queue runs
            dispatch_on_commit(job.id, timeout_seconds)
    except IntegrityError:
        existing = _by_key(owner, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _same_request(existing, kind, payload), False  # a concurrent twin won
    return job, True


def _by_key(owner: Any, key: str) -> Job | None:
    """Keys are per client (per creator); jobs created without a user share one namespace."""
    return Job.objects.filter(created_by=owner, idempotency_key=key).first()


def _same_request(job: Job, kind: str, payload: dict[str, Any]) -> Job:
    if job.kind != kind or job.payload != payload:
        raise ConflictError(
            "This Idempotency-Key was already used for a different request.",
            code="IDEMPOTENCY_KEY_REUSED",
            metadata={"job_id": str(job.id)},
        )
    return job


def cancel_job(*, job_id: uuid.UUID, actor: Any = None) -> Job:
    """Queued: cancelled now. Running: the handler stops at its next checkpoint.
    Finished: 409 JOB_NOT_CANCELLABLE."""
    username = actor.get_username() if getattr(actor, "pk", None) else ""
    row = lifecycle.execute_one(lifecycle.REQUEST_CANCEL, {"id": job_id, "actor": username})
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise NotFoundError(f"No job {job_id}.", code="JOB_NOT_FOUND")
    if row is None:
        raise ConflictError(
            f"The job is already {job.status} and cannot be cancelled.",
            code="JOB_NOT_CANCELLABLE",
            metadata={"status": job.status},
        )
    return job


def retry_job(*, job_id: uuid.UUID, actor: Any = None) -> Job | None:
    """Failed or timed-out -> queued again with fresh attempts; None if not in such a state.
    Like a create, a re-queued job is returned as such even if the queue refuses it."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return None
    username = actor.get_username() if getattr(actor, "pk", None) else ""
    with transaction.atomic():
        row = lifecycle.execute_one(
            lifecycle.RETRY_NOW, {"id": job_id, "actor": username, "from_status": job.status}
        )
        if row is None:
            return None
        job.refresh_from_db()
        dispatch_on_commit(job_id, row["timeout_seconds"])
    return job


def read_job(job_id: uuid.UUID) -> Job | None:
    """The job as a poller should see it: an overdue running job is timed out on read."""
    time_out_overdue(job_id, actor="reader")
    return Job.objects.filter(pk=job_id).select_related("created_by").first()
