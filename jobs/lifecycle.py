"""Every Job status change as one SQL statement on the database clock.

Each statement updates the row only from the expected status (and, for a
worker, the attempt it claimed), and inserts its JobEvent in the same
statement (a data-modifying CTE), so a cancel, a worker and the reaper can
never both win, and only the winner's event exists.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.db import InterfaceError, OperationalError, connection
from psycopg.types.json import Jsonb

from controlplane.lib import dbgate

# What a restart, a failover or a dead network raises (a bad statement raises other errors).
DATABASE_AWAY = (OperationalError, InterfaceError)

_EVENT = """
, ev AS (
    INSERT INTO jobs_jobevent (job_id, from_status, to_status, attempt, message, actor, created_at)
    SELECT t.id, {from_status}, t.status, t.attempts, {message}, %(actor)s, now() FROM t
)
SELECT * FROM t
"""
_COLUMNS = (
    "j.id, j.kind, j.payload, j.status, j.attempts, j.max_attempts, j.timeout_seconds, "
    "j.micro_id, j.micro_uuid, j.error_code, j.error_message, j.error_user_message, "
    "j.error_support_id, j.deadline_at, j.waiting_for, j.traceparent, j.request_id"
)
# A NULL deadline_at (jobs created before deadlines existed, and such a job after "retry
# now") means no deadline. Mind PostgreSQL's LEAST and GREATEST: they skip NULLs, which is
# what LEAST(x, j.deadline_at) below wants (x itself when there is no deadline), while an
# expression built on ``deadline_at - now()`` inside one is NULL and is skipped too: write
# those out with CASE.
#
# This attempt's time limit is the job's deadline (set so by CLAIM): running out of it is
# deadline_exceeded, not timeout.
_DEADLINE_BOUND = "(j.deadline_at IS NOT NULL AND j.timeout_at >= j.deadline_at)"
# A retry or a wait is never scheduled past the deadline.
_NOT_PAST_DEADLINE = "(j.deadline_at IS NULL OR j.deadline_at > now())"


def _event(from_status: str = "%(from_status)s", message: str = "%(message)s") -> str:
    return _EVENT.format(from_status=from_status, message=message)


CLAIM = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = 'running', attempts = j.attempts + 1,
        started_at = COALESCE(j.started_at, now()), heartbeat_at = now(),
        lease_expires_at = now() + make_interval(secs => %(lease)s),
        timeout_at = LEAST(now() + make_interval(secs => j.timeout_seconds), j.deadline_at),
        worker = %(worker)s, claim_id = gen_random_uuid(), shutdown_requested_at = NULL,
        waiting_for = '', waiting_breakers = '{{}}', updated_at = now()
    WHERE j.id = %(id)s AND j.status = 'queued' AND j.cancel_requested_at IS NULL
      AND j.run_after <= now() AND {_NOT_PAST_DEADLINE}
    RETURNING {_COLUMNS}, j.claim_id, {_DEADLINE_BOUND} AS deadline_bound
){_event("'queued'", "'claimed by ' || %(worker)s")}"""

HEARTBEAT = """
UPDATE jobs_job j SET
    heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => %(lease)s),
    progress = COALESCE(%(progress)s, j.progress),
    progress_message = COALESCE(%(progress_message)s, j.progress_message),
    updated_at = now()
WHERE j.id = %(id)s AND j.status = 'running' AND j.claim_id = %(claim)s
RETURNING j.cancel_requested_at IS NOT NULL AS cancel, j.timeout_at <= now() AS overdue,
          j.shutdown_requested_at IS NOT NULL AS shutdown
"""

_MINE = "j.id = %(id)s AND j.status = 'running' AND j.claim_id = %(claim)s"
_RELEASE = "lease_expires_at = NULL, heartbeat_at = NULL, updated_at = now()"

SUCCEED = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = 'succeeded', result = %(result)s, result_url = %(result_url)s, progress = 100,
        finished_at = now(), error_code = '', error_message = '', error_user_message = '',
        {_RELEASE}
    WHERE {_MINE} AND j.cancel_requested_at IS NULL
    RETURNING {_COLUMNS}
){_event("'running'", "'succeeded'")}"""

CANCELLED_BY_HANDLER = f"""
WITH t AS (
    UPDATE jobs_job j SET status = 'cancelled', result = NULL, finished_at = now(), {_RELEASE}
    WHERE {_MINE} AND j.cancel_requested_at IS NOT NULL
    RETURNING {_COLUMNS}
){_event("'running'", "'stopped at a checkpoint after a cancel request'")}"""

TIMED_OUT = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = 'timed_out', result = NULL, finished_at = now(), error_code = %(code)s,
        error_message = %(message)s, error_user_message = %(user_message)s,
        error_support_id = %(support_id)s, {_RELEASE}
    WHERE {_MINE}
    RETURNING {_COLUMNS}
){_event("'running'")}"""

# Final when the runner says so, or when the retry would start past the deadline: the job
# fails now with this error rather than time out later without having run again.
_FINAL = (
    "(%(final)s OR (j.deadline_at IS NOT NULL"
    " AND now() + make_interval(secs => %(delay)s) >= j.deadline_at))"
)
_RETRY_MESSAGE = (
    "CASE WHEN NOT %(final)s AND t.status = 'failed' "
    "THEN %(message)s || ' (not retried: the retry would start past the deadline)' "
    "ELSE %(message)s END"
)
FAIL_OR_RETRY = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = CASE WHEN {_FINAL} THEN 'failed' ELSE 'queued' END,
        run_after = now() + make_interval(secs => %(delay)s), dispatched_at = NULL,
        finished_at = CASE WHEN {_FINAL} THEN now() ELSE NULL END,
        error_code = %(code)s, error_message = %(message)s,
        error_user_message = %(user_message)s,
        error_support_id = CASE WHEN {_FINAL} THEN %(support_id)s::uuid END,
        worker = '', result = NULL, {_RELEASE}
    WHERE {_MINE} AND j.cancel_requested_at IS NULL
    RETURNING {_COLUMNS}
){_event("'running'", _RETRY_MESSAGE)}"""

# A job whose cancel was requested ends cancelled rather than going back to the queue.
_CANCEL_REQUESTED = "j.cancel_requested_at IS NOT NULL"
SHUTDOWN = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = CASE WHEN {_CANCEL_REQUESTED} THEN 'cancelled'
                      WHEN %(requeue)s THEN 'queued' ELSE 'failed' END,
        attempts = CASE WHEN %(requeue)s AND NOT {_CANCEL_REQUESTED} THEN j.attempts - 1
                        ELSE j.attempts END,
        run_after = now(), dispatched_at = NULL, worker = '', result = NULL,
        finished_at = CASE WHEN %(requeue)s AND NOT {_CANCEL_REQUESTED} THEN NULL ELSE now() END,
        error_code = CASE WHEN {_CANCEL_REQUESTED} THEN '' ELSE 'worker_shutdown' END,
        error_message = CASE WHEN {_CANCEL_REQUESTED} THEN ''
                             ELSE 'the worker was shut down mid-job' END,
        error_user_message = CASE WHEN %(requeue)s OR {_CANCEL_REQUESTED} THEN ''
                                  ELSE %(user_message)s END,
        error_support_id = CASE WHEN %(requeue)s OR {_CANCEL_REQUESTED} THEN NULL
                                ELSE %(support_id)s::uuid END,
        {_RELEASE}
    WHERE {_MINE}
    RETURNING {_COLUMNS}
){_event("'running'", "'worker shut down'")}"""

_CANCEL_MESSAGE = (
    "CASE WHEN t.status = 'cancelled' THEN 'cancelled while queued' ELSE 'cancel requested' END"
)
REQUEST_CANCEL = f"""
WITH old AS (
    SELECT id, status FROM jobs_job WHERE id = %(id)s FOR UPDATE
), t AS (
    UPDATE jobs_job j SET
        status = CASE WHEN old.status = 'queued' THEN 'cancelled' ELSE j.status END,
        cancel_requested_at = COALESCE(j.cancel_requested_at, now()),
        finished_at = CASE WHEN old.status = 'queued' THEN now() ELSE j.finished_at END,
        updated_at = now()
    FROM old WHERE j.id = old.id AND old.status IN ('queued', 'running')
    RETURNING {_COLUMNS}, old.status AS from_status
){_event("t.from_status", _CANCEL_MESSAGE)}"""

TIMEOUT_IF_OVERDUE = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = 'timed_out', result = NULL, finished_at = now(),
        error_code = CASE WHEN {_DEADLINE_BOUND} THEN 'deadline_exceeded' ELSE 'timeout' END,
        error_message = CASE WHEN {_DEADLINE_BOUND} THEN 'the job ran past its deadline'
                             ELSE 'the job ran past its timeout' END,
        error_user_message = CASE WHEN {_DEADLINE_BOUND} THEN %(deadline_message)s
                                  ELSE %(timeout_message)s END,
        error_support_id = gen_random_uuid(), {_RELEASE}
    WHERE j.id = ANY(ARRAY(
        SELECT id FROM jobs_job WHERE status = 'running' AND timeout_at <= now()
          AND (%(id)s::uuid IS NULL OR id = %(id)s::uuid)
        ORDER BY timeout_at LIMIT 100 FOR UPDATE SKIP LOCKED))
    RETURNING {_COLUMNS}
){_event("'running'", "'timed out (detected by ' || %(actor)s || ')'")}"""

# A queued (or waiting) job whose deadline passed, whether or not any worker runs: from the
# maintenance sweep, and for one job when a client reads it.
_EXPIRED_MESSAGE = (
    "'the deadline passed while the job was queued'"
    " || CASE WHEN j.waiting_for <> '' THEN ' (waiting for ' || j.waiting_for || ')' ELSE '' END"
)
EXPIRE_PAST_DEADLINE = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = 'timed_out', result = NULL, finished_at = now(), dispatched_at = NULL,
        error_code = 'deadline_exceeded', error_message = {_EXPIRED_MESSAGE},
        error_user_message = CASE WHEN j.waiting_for <> '' THEN %(waiting_message)s
                                  ELSE %(deadline_message)s END,
        error_support_id = gen_random_uuid(), updated_at = now()
    WHERE j.id = ANY(ARRAY(
        SELECT id FROM jobs_job WHERE status = 'queued' AND deadline_at <= now()
          AND (%(id)s::uuid IS NULL OR id = %(id)s::uuid)
        ORDER BY deadline_at LIMIT 100 FOR UPDATE SKIP LOCKED))
    RETURNING {_COLUMNS}
){_event("'queued'", "'deadline passed while queued (detected by ' || %(actor)s || ')'")}"""

REAP_LOST = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = CASE WHEN {_CANCEL_REQUESTED} THEN 'cancelled'
                      WHEN j.attempts < j.max_attempts THEN 'queued' ELSE 'failed' END,
        finished_at = CASE WHEN j.attempts < j.max_attempts AND NOT {_CANCEL_REQUESTED} THEN NULL
                           ELSE now() END,
        error_code = CASE WHEN {_CANCEL_REQUESTED} THEN '' ELSE 'worker_lost' END,
        error_message = CASE WHEN {_CANCEL_REQUESTED} THEN ''
                             ELSE 'the worker running this job stopped renewing its lease' END,
        error_user_message = CASE WHEN {_CANCEL_REQUESTED} THEN '' ELSE %(user_message)s END,
        error_support_id = CASE WHEN j.attempts < j.max_attempts OR {_CANCEL_REQUESTED} THEN NULL
                                ELSE gen_random_uuid() END,
        result = NULL,
        run_after = now(), dispatched_at = NULL, worker = '', {_RELEASE}
    WHERE j.id = ANY(ARRAY(
        SELECT id FROM jobs_job WHERE status = 'running' AND lease_expires_at < now()
        ORDER BY lease_expires_at LIMIT 100 FOR UPDATE SKIP LOCKED))
    RETURNING {_COLUMNS}
){_event("'running'", "'worker lost (lease expired)'")}"""

# dispatched_at marks a job handed to django-q2 (set in the statement, or the insert, whose
# commit is followed by the hand-off). A job whose mark is empty or older than
# JOB_REDISPATCH_SECONDS is due: never handed over, refused by the broker, or lost from it.
# So is one marked within the last %(resend)s seconds, when given: after an outage, whose
# hand-off may have failed with the database (and the clearing of its mark with it).
# The timeout it returns is django-q2's hard limit for the task: never past the deadline.
DISPATCH_DUE = """
UPDATE jobs_job SET dispatched_at = now()
WHERE id = ANY(ARRAY(
    SELECT id FROM jobs_job
    WHERE status = 'queued' AND cancel_requested_at IS NULL AND run_after <= now()
      AND (deadline_at IS NULL OR deadline_at > now())
      AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => %(redispatch)s)
           OR dispatched_at >= now() - make_interval(secs => %(resend)s::float8))
    ORDER BY run_after LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
RETURNING id,
    CASE WHEN deadline_at IS NULL THEN timeout_seconds
         ELSE LEAST(timeout_seconds, GREATEST(1, ceil(extract(epoch FROM deadline_at - now()))))
    END::int AS timeout_seconds
"""

# The hand-off failed (or a draining worker gave the job back): due on the next pass.
UNDISPATCH = "UPDATE jobs_job SET dispatched_at = NULL WHERE id = %(id)s AND status = 'queued'"

REQUEST_SHUTDOWN = """
UPDATE jobs_job SET shutdown_requested_at = now()
WHERE status = 'running' AND worker LIKE %(prefix)s
RETURNING id
"""

MINE_STILL_RUNNING = (
    "SELECT id, claim_id, kind FROM jobs_job WHERE status = 'running' AND worker LIKE %(prefix)s"
)

# The handler stopped because the database was away (for most of its lease, or under its
# own queries): back to the queue with the attempt not counted (the job did nothing
# wrong), at most ``most`` times per job.
_AWAY_MESSAGE = "'stopped while the database was unreachable; attempt not counted'"
REQUEUE_DATABASE_AWAY = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = CASE WHEN {_CANCEL_REQUESTED} THEN 'cancelled' ELSE 'queued' END,
        attempts = CASE WHEN {_CANCEL_REQUESTED} THEN j.attempts ELSE j.attempts - 1 END,
        finished_at = CASE WHEN {_CANCEL_REQUESTED} THEN now() ELSE NULL END,
        run_after = now(), dispatched_at = NULL, worker = '', result = NULL,
        error_code = '', error_message = '', error_user_message = '', error_support_id = NULL,
        {_RELEASE}
    WHERE {_MINE} AND (
        SELECT count(*) FROM jobs_jobevent e
        WHERE e.job_id = j.id AND e.message = {_AWAY_MESSAGE}) < %(most)s
    RETURNING {_COLUMNS}
){_event("'running'", _AWAY_MESSAGE)}"""

# The upstream's breaker refuses calls: the job waits in the queue, its attempt not spent,
# until the breaker's retry-after (never past the deadline; the sweep ends it there). These
# requeues are not the database-away ones, so they do not count toward that cap.
_WAIT_UNTIL = "LEAST(now() + make_interval(secs => %(wait)s), j.deadline_at)"
_WAIT_MESSAGE = (
    "%(message)s || CASE WHEN t.deadline_at IS NULL THEN '' ELSE ', or at the deadline' END"
    " || '; no attempt spent'"
)
# Found before the attempt: the job was never claimed.
WAIT_BEFORE_ATTEMPT = f"""
WITH t AS (
    UPDATE jobs_job j SET
        waiting_for = %(waiting_for)s, waiting_breakers = %(breakers)s::varchar[],
        run_after = {_WAIT_UNTIL}, dispatched_at = NULL, updated_at = now()
    WHERE j.id = %(id)s AND j.status = 'queued' AND j.cancel_requested_at IS NULL
      AND j.run_after <= now() AND {_NOT_PAST_DEADLINE}
    RETURNING {_COLUMNS}
){_event("'queued'", _WAIT_MESSAGE)}"""
# Raised during the attempt (CircuitOpenError): back to the queue, the attempt given back.
WAIT_DURING_ATTEMPT = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = CASE WHEN {_CANCEL_REQUESTED} THEN 'cancelled' ELSE 'queued' END,
        attempts = CASE WHEN {_CANCEL_REQUESTED} THEN j.attempts ELSE j.attempts - 1 END,
        finished_at = CASE WHEN {_CANCEL_REQUESTED} THEN now() ELSE NULL END,
        waiting_for = CASE WHEN {_CANCEL_REQUESTED} THEN '' ELSE %(waiting_for)s END,
        waiting_breakers = CASE WHEN {_CANCEL_REQUESTED} THEN '{{}}'
                                ELSE %(breakers)s::varchar[] END,
        run_after = {_WAIT_UNTIL}, dispatched_at = NULL, worker = '', result = NULL,
        error_code = '', error_message = '', error_user_message = '', error_support_id = NULL,
        {_RELEASE}
    WHERE {_MINE}
    RETURNING {_COLUMNS}
){_event("'running'", _WAIT_MESSAGE)}"""

# dispatched_at = now(): the caller hands the job over after its commit (jobs.queue) with its
# whole timeout_seconds. The job gets a fresh deadline of its deadline_seconds, and still
# none if it was created without one.
RETRY_NOW = f"""
WITH t AS (
    UPDATE jobs_job j SET
        status = 'queued', attempts = 0, run_after = now(), dispatched_at = now(),
        finished_at = NULL, cancel_requested_at = NULL, result = NULL, progress = 0,
        progress_message = '', error_code = '', error_message = '', error_user_message = '',
        error_support_id = NULL, timeout_at = NULL, worker = '', claim_id = NULL,
        waiting_for = '', waiting_breakers = '{{}}',
        deadline_at = CASE WHEN j.deadline_seconds IS NULL THEN NULL
                           ELSE now() + make_interval(secs => j.deadline_seconds) END,
        updated_at = now()
    WHERE j.id = %(id)s AND j.status IN ('failed', 'timed_out')
    RETURNING {_COLUMNS}, %(from_status)s AS from_status
){_event("t.from_status", "'retry requested'")}"""


_JSON_COLUMNS = {"payload", "result"}


def execute(statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one of the statements above on Django's connection (the caller's transaction,
    if any); the rows it returned, as dicts. No row: the job was not in the expected state
    (another worker, a cancel or the reaper got there first)."""
    try:
        return _execute(statement, params)
    except DATABASE_AWAY:
        # Outside a request nothing re-checks Django's connection after an error, so a
        # worker thread would keep its broken one forever: drop it, the next call reconnects.
        if not connection.in_atomic_block:
            connection.close()
        raise


def execute_durably(
    statement: str, params: dict[str, Any], *, wait_seconds: float
) -> list[dict[str, Any]]:
    """:func:`execute`, waiting out a database restart or failover for up to
    ``wait_seconds``: a worker's outcome must not be lost to a second of downtime. Repeating
    a statement is safe: each names the claim it expects, so a second run changes nothing."""
    give_up = time.monotonic() + wait_seconds
    pause = 0.05
    while True:
        try:
            return execute(statement, params)
        except DATABASE_AWAY:
            left = give_up - time.monotonic()
            if left <= 0:
                raise
            dbgate.wait_before_retry(min(pause, left), most=left)
            pause = min(1.0, pause * 2)


def execute_one_durably(
    statement: str, params: dict[str, Any], *, wait_seconds: float
) -> dict[str, Any] | None:
    rows = execute_durably(statement, params, wait_seconds=wait_seconds)
    return rows[0] if rows else None


def _execute(statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    params = {"actor": "", "message": "", "from_status": "", **params}
    for key in ("result",):
        if key in params and params[key] is not None:
            params[key] = Jsonb(params[key])
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        if cursor.description is None:
            return []
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # Django's cursor hands jsonb back as text
        for key in _JSON_COLUMNS & row.keys():
            if isinstance(row[key], str):
                row[key] = json.loads(row[key])
    return rows


def execute_one(statement: str, params: dict[str, Any]) -> dict[str, Any] | None:
    rows = execute(statement, params)
    return rows[0] if rows else None
