"""Job workflows used by the API and the admin: create, cancel, retry, read."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import transaction

from controlplane.errors.exceptions import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UserFacingError,
    ValidationError,
)
from controlplane.lib import correlation, tracing
from controlplane.lib.permissions import in_groups
from jobs import creation, lifecycle, registry
from jobs.maintenance import expire_past_deadline, time_out_overdue
from jobs.models import Job
from jobs.queue import dispatch_on_commit
from lookups.exceptions import InvalidSlugError
from lookups.resolver import get_lookups

logger = logging.getLogger("controlplane.jobs")
MAX_ATTEMPTS_LIMIT = 10


def max_timeout_seconds() -> int:
    """django-q2 must be able to hold a task this long (its timeout) without redelivering it."""
    return settings.Q_CLUSTER["timeout"] - settings.JOB_TIMEOUT_GRACE_SECONDS


def job_limits(timeout_seconds: int | None, deadline_seconds: int | None) -> tuple[int, int]:
    """(timeout_seconds, deadline_seconds) for a new job, or 422.

    The deadline covers queueing, every attempt and the waits between them, so it must
    leave room for at least one attempt: an explicit deadline below an explicit timeout is
    refused; a deadline alone shortens the default timeout to fit; a timeout alone stretches
    the default deadline (JOB_DEFAULT_DEADLINE_SECONDS) to fit. At most
    JOB_MAX_DEADLINE_SECONDS."""
    most = settings.JOB_MAX_DEADLINE_SECONDS
    if deadline_seconds is not None and not 1 <= deadline_seconds <= most:
        raise ValidationError(
            f"deadline_seconds must be between 1 and {most}.",
            code="INVALID_DEADLINE",
            metadata={"max_deadline_seconds": most},
        )
    if not timeout_seconds:
        timeout_seconds = settings.JOB_TIMEOUT_SECONDS
        if deadline_seconds is not None:
            timeout_seconds = min(timeout_seconds, deadline_seconds)
    elif deadline_seconds is not None and deadline_seconds < timeout_seconds:
        raise ValidationError(
            f"deadline_seconds ({deadline_seconds}) must leave room for one attempt: at least "
            f"timeout_seconds ({timeout_seconds}).",
            code="INVALID_DEADLINE",
            metadata={"timeout_seconds": timeout_seconds},
        )
    if not 1 <= timeout_seconds <= max_timeout_seconds():
        raise ValidationError(
            f"timeout_seconds must be between 1 and {max_timeout_seconds()}.",
            code="INVALID_TIMEOUT",
        )
    if deadline_seconds is None:
        deadline_seconds = min(max(settings.JOB_DEFAULT_DEADLINE_SECONDS, timeout_seconds), most)
    return timeout_seconds, deadline_seconds


def create_job(
    *,
    kind: str,
    payload: dict[str, Any],
    created_by: Any = None,
    micro_id: str = "",
    timeout_seconds: int | None = None,
    deadline_seconds: int | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Create and enqueue a job; returns (job, created). A repeated idempotency key returns
    the first job (or 409 if it was used for a different request). The job's deadline is
    set on the database clock, from the same statement time as its ``created_at``.

    One statement writes the job and its event, or finds the key's first job
    (``jobs.creation``). Once the job is committed this returns it as created, whatever
    the queue does: a failed hand-off to django-q2 is left to maintenance
    (``jobs.queue``), never reported as an error a client would retry into a second job."""
    new = _new_job(
        created_by=created_by,
        kind=kind,
        payload=payload,
        micro_id=micro_id,
        timeout_seconds=timeout_seconds,
        deadline_seconds=deadline_seconds,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
    )
    ((job, created),) = creation.insert_jobs(
        [new], created_by_id=_owner_id(created_by), actor=_username(created_by)
    )
    if not created:
        return _same_request(job, kind, payload), False
    # Outside a transaction the statement has committed and this hands the job over now.
    dispatch_on_commit(job.id, job.timeout_seconds)
    return job, True


def create_jobs(*, items: list[dict[str, Any]], created_by: Any = None) -> list[tuple[Job, bool]]:
    """Create a batch of jobs, all or none, in one transaction; (job, created) for each item,
    in order. Each item takes create_job's arguments; an item refused for any reason
    refuses the batch, with the item's own error and ``metadata.item`` its index."""
    news = []
    for index, item in enumerate(items):
        with _about_item(index):
            news.append(_new_job(created_by=created_by, **item))
    with transaction.atomic():
        results = creation.insert_jobs(
            news, created_by_id=_owner_id(created_by), actor=_username(created_by)
        )
        for index, ((job, created), item) in enumerate(zip(results, items, strict=True)):
            if created:
                dispatch_on_commit(job.id, job.timeout_seconds)
            else:
                with _about_item(index):  # rolls the whole batch back
                    _same_request(job, item["kind"], item.get("payload", {}))
    return results


@contextmanager
def _about_item(index: int) -> Iterator[None]:
    """A batch item's error names the item: in its message and as ``metadata.item``."""
    try:
        yield
    except UserFacingError as exc:
        exc.user_message = f"Item {index}: {exc.user_message}"
        exc.metadata["item"] = index
        raise


def _new_job(
    *,
    created_by: Any,
    kind: str,
    payload: dict[str, Any],
    micro_id: str = "",
    timeout_seconds: int | None = None,
    deadline_seconds: int | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
) -> creation.NewJob:
    """A job as it will be stored, or the error that refuses it: the kind exists, the
    creator may create it, its payload passes the kind's check, its limits are valid."""
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
    timeout_seconds, deadline_seconds = job_limits(timeout_seconds, deadline_seconds)
    micro_uuid, micro_note = _resolve_micro(micro_id)
    return creation.NewJob(
        kind=kind,
        payload=payload,
        micro_id=micro_id,
        micro_uuid=micro_uuid,
        timeout_seconds=timeout_seconds,
        deadline_seconds=deadline_seconds,
        max_attempts=max_attempts or settings.JOB_MAX_ATTEMPTS,
        idempotency_key=idempotency_key or None,
        traceparent=tracing.carried_traceparent(f"create job {kind}"),
        request_id=correlation.request_id(),
        message="created" + (f"; {micro_note}" if micro_note else ""),
    )


def _resolve_micro(micro_id: str) -> tuple[uuid.UUID | None, str]:
    """The micro-service's UUID, or None and why (the job goes on with the slug only)."""
    if not micro_id:
        return None, ""
    try:
        found = get_lookups().lookup(micro_id)
    except InvalidSlugError:
        raise
    except UserFacingError as exc:  # not found / database trouble: go on slug-only
        return None, f"micro_id {micro_id!r} unresolved ({exc.code}); continuing with the slug only"
    if found.fallback_used:
        return None, f"micro_id {micro_id!r} not resolved (lookup fallback); slug only"
    return found.uuid, ""


def _owner_id(user: Any) -> int | None:
    """Keys are per client (per creator); jobs created without a user share one namespace."""
    return getattr(user, "pk", None)


def _username(user: Any) -> str:
    return user.get_username() if getattr(user, "pk", None) else ""


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
    job = Job.objects.with_clock().filter(pk=job_id).first()
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
        job = Job.objects.with_clock().get(pk=job_id)
        dispatch_on_commit(job_id, row["timeout_seconds"])
    return job


def read_job(job_id: uuid.UUID) -> Job | None:
    """The job as a poller should see it: a running job past its time limit, or a queued
    one past its deadline, is timed out on read (no worker needs to run for that)."""
    time_out_overdue(job_id, actor="reader")
    expire_past_deadline(job_id, actor="reader")
    return Job.objects.with_clock().filter(pk=job_id).select_related("created_by").first()
