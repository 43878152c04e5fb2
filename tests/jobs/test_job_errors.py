"""A failed job tells its client what its error says (the user-safe message of its
ErrorRecord, with the reference), not only its code; the admin shows both."""

from __future__ import annotations

from typing import Any

from controlplane.errors.models import ErrorRecord
from jobs.actions import create_job
from jobs.tasks import run_job


def test_a_failed_jobs_error_message_is_the_errors_user_message(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    payload = {"seconds": 0, "fail_times": 1}
    job = create_job(kind="demo.sleep", payload=payload, max_attempts=1, created_by=client_user)[0]
    assert run_job(str(job.id)) == "failed"
    error = api_as(client_user).get(f"/api/v1/jobs/{job.id}/").json()["error"]
    record = ErrorRecord.objects.get(support_id=error["support_id"])
    assert error["code"] == record.code == "DEMO_TRANSIENT_FAILURE"
    assert record.user_message == "demo failure on attempt 1 of 1 planned"
    assert error["message"] == f"{record.user_message} (Reference: {record.support_id})"


def test_a_job_to_be_retried_says_so_after_the_message(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    payload = {"seconds": 0, "fail_times": 1}
    job = create_job(kind="demo.sleep", payload=payload, max_attempts=2, created_by=client_user)[0]
    assert run_job(str(job.id)) == "retrying"
    body = api_as(client_user).get(f"/api/v1/jobs/{job.id}/").json()
    assert body["status"] == "queued"
    assert body["error"] == {
        "code": "DEMO_TRANSIENT_FAILURE",
        "message": "demo failure on attempt 1 of 1 planned. It will be retried.",
        "support_id": None,  # nothing final to look up yet
    }


def test_the_admin_job_page_shows_the_code_and_the_message_the_client_reads(
    clean_jobs: None, ops_user: Any, client: Any
) -> None:
    job = create_job(kind="demo.sleep", payload={"fail_times": 1}, max_attempts=1)[0]
    run_job(str(job.id))
    job.refresh_from_db()
    client.force_login(ops_user)
    page = client.get(f"/admin/jobs/job/{job.id}/change/").content.decode()
    assert "DEMO_TRANSIENT_FAILURE" in page
    assert "message the client reads" in page.lower()
    assert f"demo failure on attempt 1 of 1 planned (Reference: {job.error_support_id})" in page
