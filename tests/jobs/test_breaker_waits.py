"""A job whose upstream's breaker refuses calls waits in the queue without spending an
attempt, visibly (``waiting_for``, an event, the admin, the dashboard), bounded by its
deadline, and runs once the breaker permits again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from controlplane.breakers.actions import override_breaker
from controlplane.breakers.circuit import breaker
from controlplane.resilience import providers
from jobs.actions import create_job
from jobs.maintenance import run_maintenance
from jobs.models import Job
from jobs.tasks import run_job
from tests.breakers.conftest import fresh_name  # noqa: F401
from tests.jobs import breaker_kinds  # noqa: F401 -- registers test.behind_breaker here too
from tests.jobs.conftest import events, wait_status
from tests.jobs.test_deadlines import shift_back
from tests.resilience.flaky_server import Script, flaky_server


@pytest.fixture
def upstream(fresh_name: str, settings: Any) -> Iterator[tuple[str, Script]]:  # noqa: F811
    """A real upstream on 127.0.0.1, configured as provider ``fresh_name`` (its breaker's
    name), with the breaker's row in place for ops to act on."""
    script = Script([(200, {})])
    providers._clients.clear()
    with flaky_server(script) as url:
        settings.PROVIDERS = {
            fresh_name: {
                "base_url": url,
                "mode": "real",
                "timeout": 2,
                "client_calls": ["GET /v1/parse"],
            }
        }
        assert breaker(fresh_name).state == "closed"  # creates its row
        yield fresh_name, script
    providers._clients.clear()


def force_open(name: str, actor: Any, expires_in: float | None = None) -> None:
    override_breaker(
        name=name, action="force_open", reason="upstream down", actor=actor, expires_in=expires_in
    )


def reset(name: str, actor: Any) -> None:
    override_breaker(name=name, action="reset", reason="upstream back", actor=actor)


def http_job(name: str, **options: Any) -> Job:
    payload = {"provider": name, "path": "/v1/parse"}
    return create_job(kind="http.request", payload=payload, **options)[0]


def wait_for_wait(job_id: Any, seconds: float = 20) -> Job:
    deadline = time.monotonic() + seconds
    while True:
        job = Job.objects.get(pk=job_id)
        if job.waiting_for:
            return job
        assert time.monotonic() < deadline, f"job never waited ({job.status})"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_job_waits_for_an_open_breaker_without_spending_an_attempt_then_succeeds(
    start_worker: Any,
    upstream: tuple[str, Script],
    client_user: Any,
    ops_user: Any,
    api_as: Any,
    settings: Any,
) -> None:
    name, script = upstream
    force_open(name, ops_user)  # no expiry: the job would look again in 30 s
    start_worker(PROVIDERS=json.dumps(settings.PROVIDERS))
    api = api_as(client_user)
    created = api.post(
        "/api/v1/jobs/",
        {"kind": "http.request", "payload": {"provider": name, "path": "/v1/parse"}},
        format="json",
    ).json()
    wait_for_wait(created["id"])
    time.sleep(1.0)  # several maintenance passes: the job stays put, the upstream untouched
    body = api.get(f"/api/v1/jobs/{created['id']}/").json()
    assert (body["status"], body["attempts"], body["waiting_for"]) == (
        "queued",
        0,
        f"breaker {name}",
    )
    job = Job.objects.get(pk=created["id"])
    assert job.run_after > timezone.now() and script.requests == 0
    assert events(job.id) == [("", "queued"), ("queued", "queued")]
    assert "checked before the attempt" in job.events.last().message

    reset(name, ops_user)
    started = time.monotonic()
    done = wait_status(job.id, {"succeeded", "failed", "timed_out"}, seconds=10)
    assert time.monotonic() - started < 5  # woken by the reset, not at its 30 s retry-after
    assert (done.status, done.attempts, done.waiting_for) == ("succeeded", 1, "")
    assert done.result["status"] == 200 and script.requests == 1


@pytest.mark.slow
def test_a_breaker_refusal_raised_during_the_attempt_waits_too(
    start_worker: Any,
    fresh_name: str,  # noqa: F811
    ops_user: Any,
) -> None:
    assert breaker(fresh_name).state == "closed"
    force_open(fresh_name, ops_user, expires_in=3)  # permits again by itself in 3 s
    start_worker("tests.jobs.breaker_kinds")
    job = create_job(kind="test.behind_breaker", payload={"breaker": fresh_name})[0]
    waiting = wait_for_wait(job.id)
    assert (waiting.status, waiting.attempts) == ("queued", 0)
    assert waiting.waiting_for == f"breaker {fresh_name}"
    assert "raised during the attempt" in waiting.events.last().message
    done = wait_status(job.id, {"succeeded", "failed", "timed_out"}, seconds=15)
    assert (done.status, done.attempts, done.waiting_for) == ("succeeded", 1, "")
    assert done.result == {"called": True, "attempt": 1}
    assert events(job.id) == [
        ("", "queued"),
        ("queued", "running"),
        ("running", "queued"),  # the attempt given back
        ("queued", "running"),
        ("running", "succeeded"),
    ]


def test_a_reset_wakes_waiting_jobs_before_their_retry_after(
    clean_jobs: None, upstream: tuple[str, Script], ops_user: Any
) -> None:
    name, script = upstream
    force_open(name, ops_user)
    job = http_job(name)
    assert run_job(str(job.id)) == f"waiting for breaker {name}"
    assert run_maintenance().woken == 0  # still forced open
    reset(name, ops_user)
    assert run_maintenance().woken == 1
    job.refresh_from_db()
    assert job.run_after <= timezone.now() and job.dispatched_at is not None
    assert run_job(str(job.id)) == "succeeded"
    assert script.requests == 1


def test_a_wait_never_outlasts_the_deadline(
    clean_jobs: None, upstream: tuple[str, Script], ops_user: Any, client_user: Any, api_as: Any
) -> None:
    name, _ = upstream
    force_open(name, ops_user, expires_in=3600)  # retry-after: an hour
    job = http_job(name, deadline_seconds=10, created_by=client_user)
    run_job(str(job.id))
    job.refresh_from_db()
    assert job.run_after == job.deadline_at  # not an hour from now
    shift_back(job.id, 10)  # the deadline passes while it waits
    assert run_maintenance().past_deadline == 1
    body = api_as(client_user).get(f"/api/v1/jobs/{job.id}/").json()
    assert (body["status"], body["error"]["code"]) == ("timed_out", "deadline_exceeded")
    assert body["error"]["message"] == (
        "The job did not finish before its deadline: a service it depends on stayed "
        f"unavailable. (Reference: {body['error']['support_id']})"
    )
    assert f"(waiting for breaker {name})" in Job.objects.get(pk=job.id).error_message


def test_ops_see_waiting_jobs_per_breaker_in_the_admin_and_on_the_dashboard(
    clean_jobs: None, upstream: tuple[str, Script], ops_user: Any, client: Any, settings: Any
) -> None:
    name, _ = upstream
    other = f"{name}-b"
    settings.PROVIDERS = {**settings.PROVIDERS, other: settings.PROVIDERS[name]}
    assert breaker(other).state == "closed"
    force_open(name, ops_user)
    force_open(other, ops_user)
    mine = [http_job(name) for _ in range(2)]
    theirs = http_job(other)
    for job in [*mine, theirs]:
        assert run_job(str(job.id)).startswith("waiting for breaker")
    assert Job.objects.waiting_per_breaker() == {name: 2, other: 1}

    client.force_login(ops_user)
    listed = client.get("/admin/jobs/waitingjob/", {"breaker": name}).content.decode()
    assert all(str(job.id) in listed for job in mine) and str(theirs.id) not in listed
    dashboard = client.get("/admin/dashboard/").content.decode()
    box = dashboard.split('id="waiting-jobs"', 1)[1].split("</p>", 1)[0]
    assert f"{name}: 2" in box and f"{other}: 1" in box
    assert f"breaker {name} is forced open; 2 job(s) waiting for it" in dashboard
