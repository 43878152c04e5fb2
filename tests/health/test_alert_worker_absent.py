"""No worker is running: the web process that notices it (health check, dashboard) delivers
"worker absent" itself, since no worker would run a delivery job; once."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.db import connection

from controlplane.health import conditions
from controlplane.health.models import AlertDelivery, AlertEvent
from tests.health.conftest import signed, webhook


@pytest.fixture
def no_workers(clean_alerts: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with connection.cursor() as cursor:  # no cluster left registered by an earlier test
        cursor.execute("DELETE FROM controlplane_cache")
    monkeypatch.setitem(conditions._last, "web", None)


def test_the_health_check_delivers_worker_absent_without_a_worker(
    no_workers: None, receiver: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
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
