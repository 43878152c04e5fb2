from __future__ import annotations

import json
import uuid
from typing import Any

from django.db import connection

from jobs.models import Job
from jobs.tasks import run_job
from lookups.models import MicroService
from tests.errors.helpers import assert_envelope
from tests.jobs.conftest import events


def test_create_returns_the_job_and_polling_guidance(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    response = api_as(client_user).post(
        "/api/v1/jobs/", {"kind": "demo.sleep", "payload": {"seconds": 1}}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert {
        "id",
        "kind",
        "status",
        "progress",
        "result",
        "error",
        "attempts",
        "timeout_at",
        "created_at",
        "started_at",
        "finished_at",
    } <= set(body)
    assert (body["status"], body["attempts"], body["timeout_seconds"]) == ("queued", 0, 600)
    assert response["X-Poll-After"] == "1" and body["poll_after_seconds"] == 1


def test_oversize_payload_is_refused_with_413(
    clean_jobs: None, client_user: Any, api_as: Any, settings: Any
) -> None:
    settings.JOB_MAX_PAYLOAD_BYTES = 2048
    big = json.dumps({"kind": "demo.sleep", "payload": {"blob": "x" * 5000}})
    response = api_as(client_user).post("/api/v1/jobs/", big, content_type="application/json")
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert response.json()["error"]["metadata"]["max_bytes"] == 2048
    assert not Job.objects.exists()


def test_unknown_kind_and_bad_input(clean_jobs: None, client_user: Any, api_as: Any) -> None:
    api = api_as(client_user)
    assert_envelope(
        api.post("/api/v1/jobs/", {"kind": "nope"}, format="json"), 422, "UNKNOWN_JOB_KIND"
    )
    assert_envelope(
        api.post("/api/v1/jobs/", {"kind": "demo.sleep", "payload": [1]}, format="json"),
        400,
        "INVALID_REQUEST",
    )
    assert_envelope(
        api.post("/api/v1/jobs/", {"kind": "demo.sleep", "timeout_seconds": 10**6}, format="json"),
        422,
        "INVALID_TIMEOUT",
    )


def test_cancel_while_queued_and_the_worker_skips_it(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    job_id = api.post("/api/v1/jobs/", {"kind": "demo.sleep"}, format="json").json()["id"]
    cancelled = api.post(f"/api/v1/jobs/{job_id}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    assert run_job(job_id).startswith("skipped")  # the queued django-q2 task arrives later
    assert Job.objects.get(pk=job_id).status == "cancelled"
    assert events(job_id) == [("", "queued"), ("queued", "cancelled")]
    assert_envelope(api.post(f"/api/v1/jobs/{job_id}/cancel/"), 409, "JOB_NOT_CANCELLABLE")


def test_an_overdue_job_is_timed_out_when_read(
    clean_jobs: None, client_user: Any, support_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    job_id = api.post("/api/v1/jobs/", {"kind": "demo.sleep"}, format="json").json()["id"]
    with connection.cursor() as cursor:  # a worker claimed it and then hung
        cursor.execute(
            "UPDATE jobs_job SET status = 'running', attempts = 1, worker = 'w/1', "
            "timeout_at = now() - interval '1 s', lease_expires_at = now() + interval '1 h' "
            "WHERE id = %s",
            [job_id],
        )
    body = api.get(f"/api/v1/jobs/{job_id}/").json()
    assert (body["status"], body["error"]["code"]) == ("timed_out", "timeout")
    assert (
        api_as(support_user).get(f"/api/v1/errors/{body['error']['support_id']}/").status_code
        == 200
    )


def test_clients_see_their_own_jobs_support_sees_all(
    clean_jobs: None, client_user: Any, support_user: Any, api_as: Any, django_user_model: Any
) -> None:
    from django.contrib.auth.models import Group

    other = django_user_model.objects.create_user("bob-client")
    other.groups.add(Group.objects.get(name="clients"))
    mine = (
        api_as(client_user)
        .post("/api/v1/jobs/", {"kind": "demo.sleep"}, format="json")
        .json()["id"]
    )
    theirs = api_as(other).post("/api/v1/jobs/", {"kind": "demo.sleep"}, format="json").json()["id"]
    listed = [j["id"] for j in api_as(client_user).get("/api/v1/jobs/").json()["results"]]
    assert listed == [mine]
    assert_envelope(api_as(client_user).get(f"/api/v1/jobs/{theirs}/"), 404, "JOB_NOT_FOUND")
    assert_envelope(
        api_as(client_user).post(f"/api/v1/jobs/{theirs}/cancel/"), 404, "JOB_NOT_FOUND"
    )
    assert len(api_as(support_user).get("/api/v1/jobs/").json()["results"]) == 2
    assert_envelope(
        api_as(support_user).post(f"/api/v1/jobs/{mine}/cancel/"), 403, "PERMISSION_DENIED"
    )
    filtered = api_as(support_user).get("/api/v1/jobs/", {"status": "cancelled"}).json()["results"]
    assert filtered == []


def test_micro_id_is_resolved_or_recorded_as_a_fallback(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    service = MicroService.objects.create(slug="wall-painting")
    api = api_as(client_user)
    known = api.post(
        "/api/v1/jobs/", {"kind": "demo.sleep", "micro_id": "wall-painting"}, format="json"
    ).json()
    assert known["micro_uuid"] == str(service.uuid)
    unknown = api.post(
        "/api/v1/jobs/", {"kind": "demo.sleep", "micro_id": "roof-repair"}, format="json"
    )
    assert unknown.status_code == 201 and unknown.json()["micro_uuid"] is None
    note = Job.objects.get(pk=unknown.json()["id"]).events.get().message
    assert "roof-repair" in note and "MICRO_SERVICE_NOT_FOUND" in note
    assert_envelope(
        api.post("/api/v1/jobs/", {"kind": "demo.sleep", "micro_id": "Bad Slug"}, format="json"),
        400,
        "INVALID_SLUG",
    )


def test_unknown_job_is_a_404(clean_jobs: None, support_user: Any, api_as: Any) -> None:
    assert_envelope(api_as(support_user).get(f"/api/v1/jobs/{uuid.uuid4()}/"), 404, "JOB_NOT_FOUND")
