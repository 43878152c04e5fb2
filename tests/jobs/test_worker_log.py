"""The worker logs one JSON object per line, with the ids of the job and request it serves."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from jobs.models import Job
from tests.jobs.conftest import wait_status


def _lines(output: str) -> list[dict[str, Any]]:
    lines = [line for line in output.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
    return parsed


@pytest.mark.slow
def test_it_logs_json_lines_with_the_ids_and_no_django_q_chatter_at_info(
    start_worker: Any, client_user: Any, api_as: Any
) -> None:
    worker = start_worker(LOG_FORMAT="json", LOG_LEVEL="INFO")
    created = api_as(client_user).post(
        "/api/v1/jobs/",
        {"kind": "demo.sleep", "payload": {"seconds": 0, "fail_times": 1}, "max_attempts": 1},
        format="json",
        HTTP_X_REQUEST_ID="req-log-1",
    )
    job = wait_status(created.json()["id"], {"failed"})
    deadline = time.monotonic() + 10
    while True:  # the worker logs the failure just after writing it
        lines = _lines(worker.output())
        recorded = [line for line in lines if line.get("event") == "error_recorded"]
        if recorded or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    (record,) = recorded
    assert record["support_id"] == str(job.error_support_id)
    assert (record["job_id"], record["request_id"]) == (str(job.id), "req-log-1")
    assert re.fullmatch(r"[0-9a-f]{32}", record["trace_id"]) and record["level"] == "INFO"
    assert record["trace_id"] == Job.objects.get(pk=job.id).traceparent.split("-")[1]

    # The runner's own line about the attempt carries the same ids, from the context.
    (attempt,) = [line for line in lines if "attempt 1 failed" in line["message"]]
    assert attempt["logger"] == "controlplane.jobs"
    assert (attempt["job_id"], attempt["request_id"]) == (str(job.id), "req-log-1")
    assert attempt["trace_id"] == record["trace_id"]

    # django-q2 ran the task (and logs its start), but says nothing per task at INFO.
    django_q = [line for line in lines if line["logger"] == "django-q"]
    assert any("Q Cluster" in line["message"] for line in django_q)
    assert not [line for line in django_q if "processing" in line["message"]]
