"""POST /api/v1/jobs/batch/: many jobs in one transaction, all or none, each dispatched."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.db import connection

from jobs.models import Job, JobEvent
from tests.errors.helpers import assert_envelope
from tests.jobs.conftest import events, wait_status

BATCH = "/api/v1/jobs/batch/"


def sleeps(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"kind": "demo.sleep", "payload": {"seconds": 0, "n": n}, **extra} for n in range(count)
    ]


def queued_tasks() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_q_ormq")
        return cursor.fetchone()[0]


def test_it_creates_every_job_in_order_with_its_event(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    items = sleeps(5)
    items[3] = {"kind": "demo.sleep", "payload": {"n": 3}, "max_attempts": 7, "timeout_seconds": 9}
    response = api_as(client_user).post(BATCH, {"jobs": items}, format="json")
    assert response.status_code == 201, response.content
    answered = response.json()["jobs"]
    assert [job["status"] for job in answered] == ["queued"] * 5
    ids = [job["id"] for job in answered]
    stored = {str(job.id): job for job in Job.objects.all()}
    assert set(stored) == set(ids)
    assert [stored[job_id].payload["n"] for job_id in ids] == [0, 1, 2, 3, 4]
    third = stored[ids[3]]
    assert (third.max_attempts, third.timeout_seconds, answered[3]["max_attempts"]) == (7, 9, 7)
    assert {job.created_by_id for job in stored.values()} == {client_user.pk}
    assert all(job.dispatched_at is not None and job.deadline_at for job in stored.values())
    for job_id in ids:
        assert events(job_id) == [("", "queued")]
    assert set(JobEvent.objects.values_list("actor", flat=True)) == {client_user.username}
    assert queued_tasks() == 5  # each handed to django-q2 after the commit
    # The same serializer as a single job's read.
    detail = api_as(client_user).get(f"/api/v1/jobs/{ids[0]}/").json()
    assert set(answered[0]) == set(detail)


def test_a_worker_runs_every_job_of_a_batch(
    start_worker: Any, client_user: Any, api_as: Any
) -> None:
    start_worker()
    response = api_as(client_user).post(BATCH, {"jobs": sleeps(6)}, format="json")
    assert response.status_code == 201, response.content
    for job in response.json()["jobs"]:
        assert wait_status(job["id"], {"succeeded"}, seconds=30).result["attempt"] == 1


def test_more_than_the_limit_is_refused_and_nothing_is_created(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    too_many = sleeps(settings.JOB_BATCH_MAX + 1)
    response = api_as(client_user).post(BATCH, {"jobs": too_many}, format="json")
    assert_envelope(response, 400, "INVALID_REQUEST")
    assert "At most 100 jobs" in json.dumps(response.json()["error"]["metadata"])
    assert not Job.objects.exists() and queued_tasks() == 0
    empty = api_as(client_user).post(BATCH, {"jobs": []}, format="json")
    assert_envelope(empty, 400, "INVALID_REQUEST")
    at_limit = api_as(client_user).post(BATCH, {"jobs": too_many[:-1]}, format="json")
    assert at_limit.status_code == 201
    assert Job.objects.count() == settings.JOB_BATCH_MAX


def test_a_malformed_item_is_refused_by_its_index(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    items = sleeps(4)
    items[2] = {"kind": "demo.sleep", "payload": [1], "timeout_second": 5}
    response = api_as(client_user).post(BATCH, {"jobs": items}, format="json")
    assert_envelope(response, 400, "INVALID_REQUEST")
    error = response.json()["error"]
    assert error["metadata"]["item"] == 2
    assert set(error["metadata"]["fields"]["jobs"]) == {"2"}
    assert set(error["metadata"]["fields"]["jobs"]["2"]) == {"payload", "timeout_second"}
    assert error["message"].startswith("Item 2 is invalid")
    assert not Job.objects.exists() and queued_tasks() == 0


def test_an_item_its_kind_refuses_is_refused_with_its_own_code_and_index(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    unknown = [*sleeps(2), {"kind": "no.such.kind"}]
    response = api.post(BATCH, {"jobs": unknown}, format="json")
    assert_envelope(response, 422, "UNKNOWN_JOB_KIND")
    assert response.json()["error"]["metadata"]["item"] == 2
    assert response.json()["error"]["message"].startswith("Item 2: Unknown job kind")
    bad_payload = [{"kind": "http.request", "payload": {"path": "no-slash"}}, *sleeps(1)]
    response = api.post(BATCH, {"jobs": bad_payload}, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["error"]["metadata"]["item"] == 0
    deadline = [*sleeps(1), {"kind": "demo.sleep", "timeout_seconds": 50, "deadline_seconds": 5}]
    assert_envelope(api.post(BATCH, {"jobs": deadline}, format="json"), 422, "INVALID_DEADLINE")
    assert not Job.objects.exists() and queued_tasks() == 0


def test_a_kind_the_client_may_not_create_refuses_the_batch(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    items = [*sleeps(3), {"kind": "lookups.warm", "payload": {}}]
    response = api_as(client_user).post(BATCH, {"jobs": items}, format="json")
    assert_envelope(response, 403, "JOB_KIND_FORBIDDEN")
    assert response.json()["error"]["metadata"]["item"] == 3
    assert not Job.objects.exists() and queued_tasks() == 0


def test_only_clients_create_batches(clean_jobs: None, support_user: Any, api_as: Any) -> None:
    response = api_as(support_user).post(BATCH, {"jobs": sleeps(1)}, format="json")
    assert_envelope(response, 403, "PERMISSION_DENIED")
    assert not Job.objects.exists()


def test_a_replayed_batch_returns_the_same_jobs(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    items = [{**item, "idempotency_key": f"order-{n}"} for n, item in enumerate(sleeps(3))]
    first = api.post(BATCH, {"jobs": items}, format="json")
    again = api.post(BATCH, {"jobs": items}, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    first_ids = [job["id"] for job in first.json()["jobs"]]
    assert [job["id"] for job in again.json()["jobs"]] == first_ids
    assert Job.objects.count() == 3 and JobEvent.objects.count() == 3
    assert queued_tasks() == 3  # a replay hands nothing to the queue again

    # One new item among replays: created (201), the others are the first jobs.
    grown = [*items, {**sleeps(1)[0], "idempotency_key": "order-new"}]
    response = api.post(BATCH, {"jobs": grown}, format="json")
    assert response.status_code == 201
    assert [job["id"] for job in response.json()["jobs"]][:3] == first_ids
    assert Job.objects.count() == 4 and queued_tasks() == 4

    # A single create with an item's key finds the same job.
    single = api.post("/api/v1/jobs/", sleeps(1)[0], format="json", HTTP_IDEMPOTENCY_KEY="order-0")
    assert (single.status_code, single.json()["id"]) == (200, first_ids[0])


def test_a_key_reused_for_another_request_rolls_the_whole_batch_back(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    api.post(BATCH, {"jobs": [{**sleeps(1)[0], "idempotency_key": "k"}]}, format="json")
    items = [
        {"kind": "demo.sleep", "payload": {"new": True}, "idempotency_key": "fresh"},
        {"kind": "demo.sleep", "payload": {"other": True}, "idempotency_key": "k"},
    ]
    response = api.post(BATCH, {"jobs": items}, format="json")
    assert_envelope(response, 409, "IDEMPOTENCY_KEY_REUSED")
    assert response.json()["error"]["metadata"]["item"] == 1
    # The first item's job was inserted by the same statement: rolled back with the batch.
    assert list(Job.objects.values_list("idempotency_key", flat=True)) == ["k"]
    assert JobEvent.objects.count() == 1 and queued_tasks() == 1


def test_a_key_twice_in_one_batch_is_refused(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    items = [{**item, "idempotency_key": "same"} for item in sleeps(3)]
    response = api_as(client_user).post(BATCH, {"jobs": items}, format="json")
    assert_envelope(response, 409, "IDEMPOTENCY_KEY_REUSED")  # schema-valid: never a 400
    assert response.json()["error"]["metadata"] == {"item": 1, "same_as_item": 0}
    assert not Job.objects.exists()


def test_the_body_limit_and_the_idempotency_header(
    clean_jobs: None, client_user: Any, api_as: Any, settings: Any
) -> None:
    api = api_as(client_user)
    settings.JOB_MAX_PAYLOAD_BYTES = 2048
    big = json.dumps({"jobs": sleeps(100)})  # each item is small; the batch is not
    response = api.post(BATCH, big, content_type="application/json")
    assert_envelope(response, 413, "PAYLOAD_TOO_LARGE")
    assert response.json()["error"]["metadata"]["max_bytes"] == 2048
    header = api.post(BATCH, {"jobs": sleeps(1)}, format="json", HTTP_IDEMPOTENCY_KEY="x")
    assert_envelope(header, 400, "INVALID_REQUEST")  # it would not make the batch idempotent
    assert not Job.objects.exists()


def test_the_schema_states_the_batch_rules(client: Any) -> None:
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schemas = document["components"]["schemas"]
    jobs = schemas["JobBatchInputRequest"]["properties"]["jobs"]
    assert (jobs["minItems"], jobs["maxItems"]) == (1, settings.JOB_BATCH_MAX)
    item = schemas["JobBatchItemRequest"]
    assert item["additionalProperties"] is False
    assert (
        item["properties"]["kind"]["enum"]
        == schemas["JobInputRequest"]["properties"]["kind"]["enum"]
    )
    assert item["properties"]["idempotency_key"]["maxLength"] == 200
    operation = document["paths"]["/api/v1/jobs/batch/"]["post"]
    assert {"200", "201", "400", "403", "409", "413", "422"} <= set(operation["responses"])
    assert "JOB_KIND_FORBIDDEN" in operation["responses"]["403"]["description"]
