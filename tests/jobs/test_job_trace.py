"""A job runs in the trace of the request that created it: its records and outgoing calls too."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from controlplane.errors.models import ErrorRecord
from controlplane.resilience import providers
from jobs.models import Job
from tests.breakers.conftest import fresh_name  # noqa: F401
from tests.jobs.conftest import wait_status
from tests.resilience.flaky_server import Script, flaky_server

TRACE_ID = "5b8aa5a2d2c872e8321cf37308d69df2"
TRACEPARENT = f"00-{TRACE_ID}-051581bf3cb55c13-01"


@pytest.fixture
def failing_upstream(fresh_name: str, settings: Any) -> Iterator[tuple[str, Script]]:  # noqa: F811
    script = Script([(500, {})])
    providers._clients.clear()
    with flaky_server(script) as url:
        settings.PROVIDERS = {
            fresh_name: {
                "base_url": url,
                "mode": "real",
                "timeout": 2,
                "max_attempts": 1,
                "client_calls": ["GET /v1/parse"],
            }
        }
        yield fresh_name, script
    providers._clients.clear()


@pytest.mark.slow
def test_a_jobs_record_and_upstream_calls_carry_the_creating_requests_trace(
    start_worker: Any,
    failing_upstream: tuple[str, Script],
    client_user: Any,
    api_as: Any,
    settings: Any,
) -> None:
    name, script = failing_upstream
    start_worker(PROVIDERS=json.dumps(settings.PROVIDERS))
    created = api_as(client_user).post(
        "/api/v1/jobs/",
        {"kind": "http.request", "payload": {"provider": name, "path": "/v1/parse"}},
        format="json",
        HTTP_TRACEPARENT=TRACEPARENT,
        HTTP_X_REQUEST_ID="req-job-1",
    )
    assert created.status_code == 201, created.content
    assert created["X-Request-Id"] == "req-job-1"
    job = Job.objects.get(pk=created.json()["id"])
    assert job.traceparent.split("-")[1] == TRACE_ID and job.request_id == "req-job-1"

    job = wait_status(job.id, {"failed"}, seconds=30)
    record = ErrorRecord.objects.get(support_id=job.error_support_id)
    assert (record.trace_id, record.request_id, record.job_id) == (TRACE_ID, "req-job-1", job.id)
    assert record.service == name  # the upstream's own record, written in the worker
    parents = set()
    for seen in script.seen:  # every call of every attempt
        trace_id, parent = re.fullmatch(
            r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}", seen.headers["traceparent"]
        ).groups()
        assert trace_id == TRACE_ID
        assert seen.headers["x-request-id"] == "req-job-1"
        parents.add(parent)
    # One call span per attempt; the record names the last attempt's, the upstream's parent.
    assert len(parents) == job.attempts and record.span_id in parents


@pytest.mark.slow
def test_a_job_created_outside_a_request_runs_all_its_attempts_in_one_trace(
    start_worker: Any, failing_upstream: tuple[str, Script], settings: Any
) -> None:
    from jobs.actions import create_job

    name, script = failing_upstream
    start_worker(PROVIDERS=json.dumps(settings.PROVIDERS))
    job = create_job(kind="http.request", payload={"provider": name, "path": "/v1/parse"})[0]
    assert job.request_id == ""
    trace_id = job.traceparent.split("-")[1]
    job = wait_status(job.id, {"failed"}, seconds=30)
    assert job.attempts > 1
    record = ErrorRecord.objects.get(support_id=job.error_support_id)
    assert (record.trace_id, record.request_id) == (trace_id, "")
    assert {seen.headers["traceparent"].split("-")[1] for seen in script.seen} == {trace_id}
