"""Polling advice: a client that polls when told is told 1, 2, 4, 8, then every 15 s, and
never to poll past the job's deadline."""

from __future__ import annotations

from typing import Any

from tests.jobs.test_deadlines import shift_back


def follow_the_advice(api: Any, created: Any, polls: int) -> list[int | None]:
    """What a client that waits exactly as long as it is told hears, time injected: before
    each read the job's clock moves on by the advice instead of the test sleeping."""
    body = created.json()
    heard = [body["poll_after_seconds"]]
    assert created["X-Poll-After"] == str(body["poll_after_seconds"])
    for _ in range(polls):
        if body["poll_after_seconds"] is None:
            break
        shift_back(body["id"], body["poll_after_seconds"])
        response = api.get(f"/api/v1/jobs/{body['id']}/")
        body = response.json()
        heard.append(body["poll_after_seconds"])
        if body["poll_after_seconds"] is not None:
            assert response["X-Poll-After"] == str(body["poll_after_seconds"])
    return heard


def test_a_client_following_the_advice_polls_after_1_2_4_8_then_every_15_s(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    created = api.post("/api/v1/jobs/", {"kind": "demo.sleep"}, format="json")
    assert follow_the_advice(api, created, polls=7) == [1, 2, 4, 8, 15, 15, 15, 15]


def test_the_advice_lands_on_the_deadline_and_no_later(
    clean_jobs: None, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    created = api.post(
        "/api/v1/jobs/", {"kind": "demo.sleep", "deadline_seconds": 20}, format="json"
    )
    # Polls at 0, 1, 3, 7 and 15 s; at 15 s only 5 s are left, and at 20 s the job is over.
    assert follow_the_advice(api, created, polls=10) == [1, 2, 4, 8, 5, None]
    body = api.get(f"/api/v1/jobs/{created.json()['id']}/").json()
    assert (body["status"], body["error"]["code"]) == ("timed_out", "deadline_exceeded")
