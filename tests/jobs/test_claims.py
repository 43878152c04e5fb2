"""Every worker write names the claim it holds: a worker that lost its job changes nothing."""

from __future__ import annotations

from django.db import connection

from jobs import lifecycle
from jobs.actions import create_job
from jobs.maintenance import run_maintenance


def test_a_cancel_requested_before_the_worker_was_lost_ends_cancelled(clean_jobs: None) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_job SET status = 'running', attempts = 1, worker = 'gone/1', "
            "claim_id = gen_random_uuid(), cancel_requested_at = now(), "
            "lease_expires_at = now() - interval '1 s', timeout_at = now() + interval '1 h' "
            "WHERE id = %s",
            [job.id],
        )
    run_maintenance()
    job.refresh_from_db()
    assert (job.status, job.result, job.error_code) == ("cancelled", None, "")


def test_a_stale_claim_cannot_write(clean_jobs: None) -> None:
    job = create_job(kind="demo.sleep", payload={})[0]
    first = lifecycle.execute_one(lifecycle.CLAIM, {"id": job.id, "lease": 30, "worker": "w/1"})
    with connection.cursor() as cursor:  # timed out, retried now, claimed again as attempt 1
        cursor.execute("UPDATE jobs_job SET status = 'failed' WHERE id = %s", [job.id])
    lifecycle.execute(lifecycle.RETRY_NOW, {"id": job.id, "from_status": "failed"})
    second = lifecycle.execute_one(lifecycle.CLAIM, {"id": job.id, "lease": 30, "worker": "w/2"})
    assert first["attempts"] == second["attempts"] == 1
    stale = {"id": job.id, "claim": first["claim_id"], "result": {"old": True}, "result_url": ""}
    assert lifecycle.execute_one(lifecycle.SUCCEED, stale) is None
    fresh = {"id": job.id, "claim": second["claim_id"], "result": {"new": True}, "result_url": ""}
    assert lifecycle.execute_one(lifecycle.SUCCEED, fresh) is not None
    job.refresh_from_db()
    assert job.result == {"new": True}
