"""Jobs end to end with a real runworker process."""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobs.models import Job
from tests.errors.helpers import assert_envelope
from tests.jobs.conftest import events, wait_status

pytestmark = pytest.mark.slow


def create(api: Any, **body: Any) -> dict[str, Any]:
    response = api.post("/api/v1/jobs/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_success_with_progress(start_worker: Any, client_user: Any, api_as: Any) -> None:
    start_worker()
    api = api_as(client_user)
    job = create(api, kind="demo.sleep", payload={"seconds": 0.6})
    assert job["status"] == "queued"
    seen_progress = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body = api.get(f"/api/v1/jobs/{job['id']}/").json()
        seen_progress.add(body["progress"])
        if body["status"] == "succeeded":
            break
        time.sleep(0.05)
    assert body["status"] == "succeeded"
    assert body["progress"] == 100 and body["result"]["attempt"] == 1
    assert body["error"] is None and body["poll_after_seconds"] is None
    assert any(0 < p < 100 for p in seen_progress), seen_progress
    assert events(job["id"]) == [("", "queued"), ("queued", "running"), ("running", "succeeded")]


def test_cancel_while_running_stops_at_a_checkpoint(
    start_worker: Any, client_user: Any, api_as: Any
) -> None:
    start_worker()
    api = api_as(client_user)
    job = create(api, kind="demo.sleep", payload={"seconds": 30})
    wait_status(job["id"], {"running"})
    requested = api.post(f"/api/v1/jobs/{job['id']}/cancel/").json()
    # The handler may reach its checkpoint before the response is read back: either is right.
    assert requested["status"] in ("running", "cancelled") and requested["cancel_requested_at"]
    started = time.monotonic()
    done = wait_status(job["id"], {"cancelled", "succeeded", "failed"}, seconds=5)
    assert done.status == "cancelled"
    assert time.monotonic() - started < 2
    assert done.result is None
    assert events(job["id"])[-2:] == [("running", "running"), ("running", "cancelled")]
    # A finished job cannot be cancelled.
    again = api.post(f"/api/v1/jobs/{job['id']}/cancel/")
    assert_envelope(again, 409, "JOB_NOT_CANCELLABLE")


def test_timeout_while_running(
    start_worker: Any, client_user: Any, support_user: Any, api_as: Any
) -> None:
    start_worker()
    api = api_as(client_user)
    job = create(api, kind="demo.sleep", payload={"seconds": 30}, timeout_seconds=1)
    done = wait_status(job["id"], {"timed_out", "succeeded", "failed"}, seconds=10)
    assert (done.status, done.error_code, done.result) == ("timed_out", "timeout", None)
    body = api.get(f"/api/v1/jobs/{job['id']}/").json()
    assert body["error"]["code"] == "timeout"
    support_id = body["error"]["support_id"]
    assert api_as(support_user).get(f"/api/v1/errors/{support_id}/").status_code == 200


def test_retry_with_backoff_then_success(start_worker: Any, client_user: Any, api_as: Any) -> None:
    start_worker()
    job = create(
        api_as(client_user),
        kind="demo.sleep",
        payload={"seconds": 0, "fail_times": 2},
        max_attempts=3,
    )
    done = wait_status(job["id"], {"succeeded", "failed"})
    assert (done.status, done.attempts) == ("succeeded", 3)
    assert events(job["id"]) == [
        ("", "queued"),
        ("queued", "running"),
        ("running", "queued"),
        ("queued", "running"),
        ("running", "queued"),
        ("queued", "running"),
        ("running", "succeeded"),
    ]


def test_retries_exhausted_fail_with_a_resolvable_support_id(
    start_worker: Any, client_user: Any, support_user: Any, api_as: Any
) -> None:
    start_worker()
    api = api_as(client_user)
    job = create(api, kind="demo.sleep", payload={"seconds": 0, "fail_times": 5}, max_attempts=2)
    done = wait_status(job["id"], {"succeeded", "failed"})
    assert (done.status, done.attempts, done.error_code) == ("failed", 2, "DEMO_TRANSIENT_FAILURE")
    error = api.get(f"/api/v1/jobs/{job['id']}/").json()["error"]
    assert error["message"].endswith(f"(Reference: {error['support_id']})")
    record = api_as(support_user).get(f"/api/v1/errors/{error['support_id']}/").json()["record"]
    assert record["job_id"] == job["id"]
    assert record["code"] == "DEMO_TRANSIENT_FAILURE"


def test_a_sigkilled_worker_is_recovered_by_the_reaper(
    start_worker: Any, client_user: Any, api_as: Any
) -> None:
    worker = start_worker()
    job = create(api_as(client_user), kind="demo.sleep", payload={"seconds": 2})
    wait_status(job["id"], {"running"})
    worker.kill_all()  # the machine is gone: no drain, no goodbye
    assert Job.objects.get(pk=job["id"]).status == "running"
    start_worker()
    done = wait_status(job["id"], {"succeeded", "failed"}, seconds=30)
    assert (done.status, done.attempts) == ("succeeded", 2)
    assert ("running", "queued") in events(job["id"])
    assert done.events.filter(message__contains="worker lost").count() == 1


def test_sigterm_drains_within_the_drain_time(
    start_worker: Any, client_user: Any, api_as: Any
) -> None:
    import signal

    worker = start_worker(JOB_DRAIN_SECONDS="5")
    api = api_as(client_user)
    jobs = [create(api, kind="demo.sleep", payload={"seconds": 60}) for _ in range(2)]
    for job in jobs:
        wait_status(job["id"], {"running"})
    started = time.monotonic()
    for process in worker.tree():  # a supervisor signalling every process (systemd's default)
        process.send_signal(signal.SIGTERM)
    worker.proc.wait(timeout=15)
    assert time.monotonic() - started < 5 + 5
    assert worker.tree() == []  # nothing left behind
    for job in jobs:
        row = Job.objects.get(pk=job["id"])
        assert (row.status, row.error_code, row.attempts) == ("queued", "worker_shutdown", 0)
