"""No worker is running: the web process that notices it (health check, dashboard) delivers
"worker absent" itself, since no worker would run a delivery job; once, and only after the
absence has lasted ALERT_WORKER_ABSENT_SECONDS (a deploy restarting the workers is no news)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection

from controlplane.health import conditions
from controlplane.health.conditions import ABSENT_SINCE_KEY
from controlplane.health.models import AlertDelivery, AlertEvent
from tests.health.conftest import signed, webhook


@pytest.fixture
def no_workers(clean_alerts: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with connection.cursor() as cursor:  # no cluster left registered by an earlier test
        cursor.execute("DELETE FROM controlplane_cache")
    monkeypatch.setitem(conditions._last, "web", None)


def test_the_health_check_delivers_worker_absent_without_a_worker(
    no_workers: None, receiver: Any, client: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.ALERT_WORKER_ABSENT_SECONDS = 0
    url, script = receiver(200)
    webhook(url)

    assert client.get("/api/v1/health/").json()["checks"]["workers"]["clusters"] == 0
    deadline = time.monotonic() + 5
    while not AlertDelivery.objects.filter(status="sent").exists():
        assert time.monotonic() < deadline, list(AlertDelivery.objects.values("status"))
        time.sleep(0.02)
    (seen,) = script.seen
    assert signed(seen) and json.loads(seen.body)["kind"] == "worker.absent"

    monkeypatch.setitem(conditions._last, "web", None)
    client.get("/api/v1/health/")  # still absent: the same episode, nothing new
    assert AlertEvent.objects.filter(kind="worker.absent").count() == 1

    conditions.workers_present()  # what a worker's sweep does
    assert AlertEvent.objects.get(kind="worker.absent").status == "resolved"


def absent_since_moves_back(seconds: float) -> None:
    cache = caches["cluster"]
    cache.set(ABSENT_SINCE_KEY, cache.get(ABSENT_SINCE_KEY) - seconds, timeout=None)


def test_it_fires_only_once_the_absence_has_lasted(
    no_workers: None, client: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.ALERT_WORKER_ABSENT_SECONDS = 120
    client.get("/api/v1/health/")  # a deploy: the workers are restarting
    assert not AlertEvent.objects.filter(kind="worker.absent").exists()

    absent_since_moves_back(60)
    monkeypatch.setitem(conditions._last, "web", None)
    client.get("/api/v1/health/")  # another web process, a minute later: the same absence
    assert not AlertEvent.objects.filter(kind="worker.absent").exists()

    absent_since_moves_back(61)
    monkeypatch.setitem(conditions._last, "web", None)
    client.get("/api/v1/health/")
    assert AlertEvent.objects.get(kind="worker.absent").status == "firing"


def test_a_worker_seen_ends_the_absence_clock(
    no_workers: None, client: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.ALERT_WORKER_ABSENT_SECONDS = 120
    client.get("/api/v1/health/")
    absent_since_moves_back(300)
    conditions.workers_present()  # a worker's sweep: the absence was a restart

    monkeypatch.setitem(conditions._last, "web", None)
    client.get("/api/v1/health/")  # absent again: a new absence, just begun
    assert not AlertEvent.objects.filter(kind="worker.absent").exists()
