"""What a handler returns becomes the job's result, or fails the job at once."""

from __future__ import annotations

from typing import Any

from jobs.actions import create_job
from jobs.registry import job_handler
from jobs.tasks import run_job


@job_handler("test.unstorable_result")
def _unstorable(ctx: Any, payload: dict[str, Any]) -> Any:
    return {"when": object()}


def test_a_result_that_is_not_json_fails_the_job_at_once(clean_jobs: None) -> None:
    job = create_job(kind="test.unstorable_result", payload={}, max_attempts=3)[0]
    assert run_job(str(job.id)) == "failed"
    job.refresh_from_db()
    assert (job.status, job.error_code, job.attempts) == ("failed", "invalid_result", 1)
    assert job.error_support_id is not None
