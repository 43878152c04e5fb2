"""New jobs, their "created" events and the idempotency check in one SQL statement.

One round trip whatever the number of jobs: the jobs go in as one JSON array, each is
inserted with its JobEvent by a data-modifying CTE (so no job exists without its event),
and a job whose Idempotency-Key its client already used is not inserted (``ON CONFLICT``
on the per-client unique index) but read back in the same statement, as the first job.
Keyed jobs go in in key order, so two batches that share keys wait for them in the same
order rather than deadlock. Every time in it is the statement's (``statement_timestamp()``,
what ``Now()`` and the columns' defaults are): ``created_at``, ``deadline_at`` and
``db_now`` agree.

The columns are listed here, not derived from the model: a new NOT NULL column of
``jobs_job`` needs a ``db_default`` or a place in ``_INSERT`` (every create test fails
otherwise).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID, uuid4

from django.db import IntegrityError

from jobs.models import Job

_INSERT = """
WITH item AS (
    SELECT * FROM jsonb_to_recordset(%(items)s::jsonb) AS i(
        position int, id uuid, kind varchar, payload jsonb, micro_id varchar, micro_uuid uuid,
        timeout_seconds int, deadline_seconds int, max_attempts int, idempotency_key varchar,
        traceparent varchar, request_id varchar, message text)
), j AS (
    INSERT INTO jobs_job (
        id, kind, payload, status, progress, progress_message, attempts, max_attempts,
        timeout_seconds, deadline_seconds, deadline_at, worker, result_url, error_code,
        error_message, error_user_message, waiting_for, idempotency_key, micro_id,
        micro_uuid, traceparent, request_id, created_by_id, dispatched_at)
    SELECT i.id, i.kind, i.payload, 'queued', 0, '', 0, i.max_attempts,
        i.timeout_seconds, i.deadline_seconds,
        statement_timestamp() + make_interval(secs => i.deadline_seconds), '', '', '',
        '', '', '', i.idempotency_key, i.micro_id,
        i.micro_uuid, i.traceparent, i.request_id, %(created_by)s::int, statement_timestamp()
    FROM item i ORDER BY i.idempotency_key, i.position
    ON CONFLICT (created_by_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
), ev AS (
    INSERT INTO jobs_jobevent (
        job_id, from_status, to_status, attempt, message, actor, created_at)
    SELECT j.id, '', 'queued', 0, i.message, %(actor)s, statement_timestamp()
    FROM j JOIN item i ON i.id = j.id
)
SELECT j.*, i.position, true AS created, statement_timestamp() AS db_now
FROM j JOIN item i ON i.id = j.id
UNION ALL
SELECT e.*, i.position, false, statement_timestamp()
FROM item i JOIN jobs_job e ON e.idempotency_key = i.idempotency_key
    AND e.created_by_id IS NOT DISTINCT FROM %(created_by)s::int
WHERE NOT EXISTS (SELECT FROM j WHERE j.id = i.id)
"""


@dataclass(frozen=True)
class NewJob:
    """One job to insert, checked and resolved (``jobs.actions``)."""

    kind: str
    payload: dict[str, Any]
    micro_id: str
    micro_uuid: UUID | None
    timeout_seconds: int
    deadline_seconds: int
    max_attempts: int
    idempotency_key: str | None
    traceparent: str
    request_id: str
    message: str


def insert_jobs(
    jobs: list[NewJob], *, created_by_id: int | None, actor: str
) -> list[tuple[Job, bool]]:
    """(job, created) for each of ``jobs``, in order: the new job, or the job that first
    used its idempotency key (the caller checks that it is the same request)."""
    items = [
        {**asdict(job), "position": position, "id": str(uuid4())}
        for position, job in enumerate(jobs)
    ]
    for item in items:
        item["micro_uuid"] = str(item["micro_uuid"]) if item["micro_uuid"] else None
    params = {"items": json.dumps(items), "created_by": created_by_id, "actor": actor}
    found: dict[int, tuple[Job, bool]] = {
        row.position: (row, row.created) for row in Job.objects.raw(_INSERT, params)
    }
    for position, job in enumerate(jobs):
        if position not in found:
            found[position] = (_twin(job, created_by_id), False)
    return [found[position] for position in range(len(jobs))]


def _twin(job: NewJob, created_by_id: int | None) -> Job:
    """The job a concurrent create with the same key committed after this statement began:
    its insert conflicted, but the statement's snapshot could not see it. A new statement
    does."""
    twin = (
        Job.objects.with_clock()
        .filter(created_by_id=created_by_id, idempotency_key=job.idempotency_key)
        .first()
        if job.idempotency_key
        else None
    )
    if twin is None:  # a key conflict with a job deleted meanwhile; nothing to answer with
        raise IntegrityError(f"job with idempotency key {job.idempotency_key!r} not found")
    return twin
