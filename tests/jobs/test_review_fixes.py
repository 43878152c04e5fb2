"""Regression tests for defects found in review."""

from __future__ import annotations

from typing import Any

from django.db import connection

from jobs import lifecycle
from jobs.actions import create_job
from jobs.handlers import job_handler
from jobs.maintenance import run_maintenance
from jobs.runner import run_job
from tests.errors.helpers import assert_envelope


def test_http_request_jobs_only_reach_configured_providers(
    clean_jobs: None, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.PROVIDERS = {"ocr": {"base_url": "http://127.0.0.1:9", "mode": "real"}}
    api = api_as(client_user)
    raw = api.post(
        "/api/v1/jobs/",
        {
            "kind": "http.request",
            "payload": {"base_url": "http://169.254.169.254", "path": "/latest/meta-data/"},
        },
        format="json",
    )
    assert_envelope(raw, 422, "UNKNOWN_PROVIDER")
    sneaky = api.post(
        "/api/v1/jobs/",
        {"kind": "http.request", "payload": {"provider": "ocr", "path": "//169.254.169.254/x"}},
        format="json",
    )
    assert_envelope(sneaky, 422, "INVALID_PATH")
    ok = api.post(
        "/api/v1/jobs/",
        {"kind": "http.request", "payload": {"provider": "ocr", "path": "/v1/parse"}},
        format="json",
    )
    assert ok.status_code == 201


def test_ops_only_job_kinds(clean_jobs: None, client_user: Any, ops_user: Any, api_as: Any) -> None:
    refused = api_as(client_user).post("/api/v1/jobs/", {"kind": "lookups.warm"}, format="json")
    assert_envelope(refused, 403, "JOB_KIND_FORBIDDEN")
    assert (
        api_as(ops_user).post("/api/v1/jobs/", {"kind": "lookups.warm"}, format="json").status_code
        == 201
    )


def test_idempotency_keys_are_per_client(
    clean_jobs: None, client_user: Any, api_as: Any, django_user_model: Any
) -> None:
    from django.contrib.auth.models import Group

    other = django_user_model.objects.create_user("carol-client")
    other.groups.add(Group.objects.get(name="clients"))
    body = {"kind": "demo.sleep", "payload": {"seconds": 1}}
    mine = api_as(client_user).post(
        "/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    theirs = api_as(other).post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


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
    first = lifecycle.one(lifecycle.CLAIM, {"id": job.id, "lease": 30, "worker": "w/1"})
    with connection.cursor() as cursor:  # timed out, retried now, claimed again as attempt 1
        cursor.execute("UPDATE jobs_job SET status = 'failed' WHERE id = %s", [job.id])
    lifecycle.run(lifecycle.RETRY_NOW, {"id": job.id, "from_status": "failed"})
    second = lifecycle.one(lifecycle.CLAIM, {"id": job.id, "lease": 30, "worker": "w/2"})
    assert first["attempts"] == second["attempts"] == 1
    stale = {"id": job.id, "claim": first["claim_id"], "result": {"old": True}, "result_url": ""}
    assert lifecycle.one(lifecycle.SUCCEED, stale) is None
    fresh = {"id": job.id, "claim": second["claim_id"], "result": {"new": True}, "result_url": ""}
    assert lifecycle.one(lifecycle.SUCCEED, fresh) is not None
    job.refresh_from_db()
    assert job.result == {"new": True}


@job_handler("test.unstorable_result")
def _unstorable(ctx: Any, payload: dict[str, Any]) -> Any:
    return {"when": object()}


def test_a_result_that_is_not_json_fails_the_job_at_once(clean_jobs: None) -> None:
    job = create_job(kind="test.unstorable_result", payload={}, max_attempts=3)[0]
    assert run_job(str(job.id)) == "failed"
    job.refresh_from_db()
    assert (job.status, job.error_code, job.attempts) == ("failed", "invalid_result", 1)
    assert job.error_support_id is not None
