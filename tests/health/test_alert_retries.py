"""A receiver that fails twice gets the event on the third try, through the job system's
retries; the admin shows the attempts and every response code."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.models import AlertDelivery
from jobs.models import Job
from tests.health.conftest import ALERT_WORKER, signed, webhook
from tests.jobs.conftest import wait_status

pytestmark = pytest.mark.slow


def wait_delivery(pk: int, statuses: set[str], seconds: float) -> AlertDelivery:
    deadline = time.monotonic() + seconds
    while True:
        delivery = AlertDelivery.objects.get(pk=pk)
        if delivery.status in statuses:
            return delivery
        assert time.monotonic() < deadline, f"delivery stayed {delivery.status}"
        time.sleep(0.05)


def test_it_delivers_on_the_third_try_and_the_admin_shows_the_attempts(
    clean_alerts: None, start_worker: Any, receiver: Any, ops_user: Any, client: Any
) -> None:
    url, script = receiver(500, 503, 200)
    webhook(url, name="flaky receiver", events=["provider.unhealthy"])
    start_worker(**ALERT_WORKER)

    raised = raise_alert(Alert("provider.unhealthy", "llamaparse", "Provider llamaparse is down"))
    (delivery_id,) = raised.deliveries
    delivery = wait_delivery(delivery_id, {"sent", "failed"}, 10)

    assert (delivery.status, delivery.attempts) == ("sent", 3)
    assert delivery.response_codes == [500, 503, 200]
    assert len(script.seen) == 3 and all(signed(seen) for seen in script.seen)
    assert {json.loads(seen.body)["id"] for seen in script.seen} == {raised.event_id}
    job = wait_status(
        Job.objects.get(idempotency_key=f"alert-delivery-{delivery_id}").pk, {"succeeded"}
    )
    assert job.attempts == 3

    client.force_login(ops_user)
    listed = client.get("/admin/health/alertdelivery/?status__exact=sent").content.decode()
    assert "flaky receiver" in listed and "500, 503, 200" in listed
    page = client.get(f"/admin/health/alertdelivery/{delivery_id}/change/").content.decode()
    assert "500, 503, 200" in page and ">3<" in page


def test_it_gives_up_at_once_on_a_refusal(
    clean_alerts: None, start_worker: Any, receiver: Any
) -> None:
    url, script = receiver(404)
    webhook(url, events=["worker.absent"])
    start_worker(**ALERT_WORKER)

    (delivery_id,) = raise_alert(Alert("worker.absent", "workers", "no worker")).deliveries
    delivery = wait_delivery(delivery_id, {"sent", "failed"}, 10)

    assert (delivery.status, delivery.attempts, delivery.response_codes) == ("failed", 1, [404])
    assert "HTTP 404" in delivery.last_error
    assert len(script.seen) == 1
    job = wait_status(
        Job.objects.get(idempotency_key=f"alert-delivery-{delivery_id}").pk, {"failed"}
    )
    assert (job.attempts, job.error_code) == (1, "ALERT_DELIVERY_REFUSED")
