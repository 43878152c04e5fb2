"""/metrics: the series, aggregated across processes, and protected."""

from __future__ import annotations

import re
import subprocess
from typing import Any

from django.test import Client

from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.recording import record_error
from tests.conftest import PYTHON, REPO, django_child_env

CHILD = """
import django
django.setup()
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.recording import record_error
for _ in range(3):
    record_error(InternalServerError(code="METRICS_TWO_PROCESSES"))
"""


def metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_counters_add_up_across_processes(transactional_db: Any) -> None:
    before = metric(
        Client().get("/metrics").content.decode(),
        "controlplane_error_records_total",
        'code="METRICS_TWO_PROCESSES"',
    )
    record_error(InternalServerError(code="METRICS_TWO_PROCESSES"))
    record_error(InternalServerError(code="METRICS_TWO_PROCESSES"))
    child = subprocess.run(
        [PYTHON, "-c", CHILD],
        cwd=REPO,
        env=django_child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    text = Client().get("/metrics").content.decode()
    after = metric(text, "controlplane_error_records_total", 'code="METRICS_TWO_PROCESSES"')
    assert after - before == 5  # 2 here + 3 in the other process


def test_the_series_are_exposed(transactional_db: Any, client_user: Any, api_as: Any) -> None:
    from controlplane.breakers.circuit import breaker
    from tests.breakers.conftest import fail

    fail(breaker("metrics-breaker", failure_threshold=1), 2)
    api_as(client_user).get("/api/v1/no-such-thing/")
    text = Client().get("/metrics").content.decode()
    for series in (
        "controlplane_http_requests_total",
        "controlplane_error_records_total",
        'controlplane_breaker_state{breaker="metrics-breaker"} 2.0',
        'controlplane_breaker_transitions_total{breaker="metrics-breaker",to_state="open"}',
        'controlplane_breaker_rejections_total{breaker="metrics-breaker"}',
        "controlplane_jobs{",
        "controlplane_job_queue_depth",
        'controlplane_lookup_cache_total{result="hit"}',
        "controlplane_lookup_latency_seconds_bucket",
        "controlplane_database_up 1.0",
    ):
        assert series in text, series
    assert 'status="404"' in text


def test_metrics_are_protected(transactional_db: Any, settings: Any) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert Client().get("/metrics").status_code == 403  # the test client is 127.0.0.1
    settings.METRICS_TOKEN = "scrape-me"
    assert Client().get("/metrics").status_code == 403
    ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me")
    assert ok.status_code == 200
