"""/metrics: the series, aggregated across processes, and protected."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from controlplane.breakers.circuit import breaker
from controlplane.breakers.models import Breaker
from controlplane.errors.exceptions import InternalServerError
from controlplane.errors.recording import record_error
from tests.breakers.conftest import fail
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


@pytest.mark.made_up_error_codes
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


@pytest.fixture
def uncached(settings: Any) -> None:
    """Database-backed series read afresh at every scrape (they are cached 10 s by default)."""
    settings.METRICS_CACHE_SECONDS = 0


def test_the_series_are_exposed(
    transactional_db: Any, uncached: None, client_user: Any, api_as: Any
) -> None:
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


def test_behind_a_trusted_proxy_the_forwarded_address_decides(
    transactional_db: Any, settings: Any
) -> None:
    settings.METRICS_ALLOWED_NETWORKS = ["10.1.0.0/16"]
    settings.METRICS_TRUSTED_PROXIES = ["127.0.0.1/32"]  # the test client's address
    scraper = Client().get("/metrics", HTTP_X_FORWARDED_FOR="192.0.2.9, 10.1.2.3")
    assert scraper.status_code == 200
    outsider = Client().get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3, 192.0.2.9")
    assert outsider.status_code == 403  # the last hop before the proxy is what counts
    settings.METRICS_TRUSTED_PROXIES = []
    assert Client().get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3").status_code == 403


def test_a_scrape_within_the_cache_time_runs_no_query(transactional_db: Any, settings: Any) -> None:
    settings.METRICS_CACHE_SECONDS = 0
    Client().get("/metrics")  # read now
    settings.METRICS_CACHE_SECONDS = 60
    fail(breaker("metrics-cached", failure_threshold=1), 1)
    with CaptureQueriesContext(connection) as queries:
        text = Client().get("/metrics").content.decode()
    assert len(queries) == 0
    assert 'controlplane_breaker_state{breaker="metrics-cached"}' not in text  # cached state


def series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_client_chosen_labels_are_bounded(
    transactional_db: Any, uncached: None, client_user: Any, api_as: Any
) -> None:
    api = api_as(client_user)
    before = series(Client().get("/metrics").content.decode())
    for n in range(20):
        Client().generic(f"BREW{n:02d}", "/api/v1/")
        api.post("/api/v1/errors/", {"code": f"RANDOM_{n:02d}", "message": "m", "service": "s"})
        api.post(f"/api/v1/breakers/client-{n:02d}/outcomes/", {"outcome": "failure"})
    Breaker.objects.filter(name__startswith="client-").update(state="open")
    added = series(Client().get("/metrics").content.decode()) - before
    assert not [s for s in added if "BREW" in s or "RANDOM_" in s or "client-" in s], added
    assert len(added) <= 8, added  # "other" method, "reported" code, client breakers by state
    text = Client().get("/metrics").content.decode()
    assert 'method="other"' in text and 'code="reported"' in text
    assert metric(text, "controlplane_client_breakers", 'state="open"') == 20
