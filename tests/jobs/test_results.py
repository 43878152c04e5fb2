"""What a handler returns becomes the job's result, or fails the job at once."""

from __future__ import annotations

from typing import Any

from jobs.actions import create_job
from jobs.models import JobEvent
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


def test_a_failure_quoting_a_secret_is_stored_and_shown_without_it(
    clean_jobs: None, ops_user: Any, client: Any
) -> None:
    job = create_job(
        kind="demo.sleep", payload={"seconds": "api_key=sk-live-1234567890"}, max_attempts=1
    )[0]
    assert run_job(str(job.id)) == "failed"  # float("api_key=...") raised, quoting it
    job.refresh_from_db()
    assert "sk-live" not in job.error_message and "api_key=[Filtered]" in job.error_message
    assert not JobEvent.objects.filter(job=job, message__contains="sk-live").exists()
    client.force_login(ops_user)
    page = client.get(f"/admin/jobs/job/{job.id}/change/").content.decode()
    assert "sk-live" not in page
