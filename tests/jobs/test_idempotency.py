"""An Idempotency-Key returns the first job on repeat, per client, and refuses a reuse."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from jobs.models import Job
from tests.errors.helpers import assert_envelope


def test_idempotency_key(clean_jobs: None, client_user: Any, api_as: Any) -> None:
    api = api_as(client_user)
    body = {"kind": "demo.sleep", "payload": {"seconds": 1}}
    first = api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    again = api.post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Job.objects.count() == 1
    other = api.post(
        "/api/v1/jobs/",
        {**body, "payload": {"seconds": 2}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="order-42",
    )
    assert_envelope(other, 409, "IDEMPOTENCY_KEY_REUSED")


def test_idempotency_keys_are_per_client(
    clean_jobs: None, client_user: Any, api_as: Any, django_user_model: Any
) -> None:
    other = django_user_model.objects.create_user("carol-client")
    other.groups.add(Group.objects.get(name="clients"))
    body = {"kind": "demo.sleep", "payload": {"seconds": 1}}
    mine = api_as(client_user).post(
        "/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    theirs = api_as(other).post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]


def test_deleting_clients_who_used_the_same_key_releases_it(
    clean_jobs: None, client_user: Any, api_as: Any, django_user_model: Any
) -> None:
    other = django_user_model.objects.create_user("carol-client")
    other.groups.add(Group.objects.get(name="clients"))
    body = {"kind": "demo.sleep", "payload": {"seconds": 1}}
    for user in (client_user, other):
        created = api_as(user).post("/api/v1/jobs/", body, format="json", HTTP_IDEMPOTENCY_KEY="k")
        assert created.status_code == 201
    client_user.delete()
    other.delete()  # the jobs lose their creator and, with it, their keys: no collision
    assert list(Job.objects.values_list("created_by", "idempotency_key")) == [(None, None)] * 2
