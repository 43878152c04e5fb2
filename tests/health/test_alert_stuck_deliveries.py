"""A delivery nothing drives any more (its job ended without a verdict, or its direct
thread died with its process) is re-driven once by a new job with the attempts it has
left, then marked failed with the reason; never left pending for ever."""

from __future__ import annotations

from typing import Any

from django.db import connection

from controlplane.health.alert_repairs import stuck_deliveries
from controlplane.health.alerts import Alert, raise_alert
from controlplane.health.models import AlertChannel, AlertDelivery
from jobs.models import Job


def one_delivery(**options: Any) -> int:
    AlertChannel.objects.create(name="mail", kind="email", target="ops@example.com")
    (delivery_id,) = raise_alert(
        Alert("worker.absent", "workers", "no worker"), **options
    ).deliveries
    return delivery_id


def end_job(key: str, status: str, error_code: str) -> None:
    assert Job.objects.filter(idempotency_key=key).update(status=status, error_code=error_code)


def test_a_delivery_whose_job_timed_out_is_redriven_once_then_failed(
    db: Any, settings: Any
) -> None:
    delivery_id = one_delivery()
    AlertDelivery.objects.filter(pk=delivery_id).update(attempts=2, status="retrying")
    assert delivery_id not in stuck_deliveries()  # its job still runs

    end_job(f"alert-delivery-{delivery_id}", "timed_out", "JOB_TIMEOUT")
    assert stuck_deliveries()[delivery_id] == "redriven"
    redrive = Job.objects.get(idempotency_key=f"alert-delivery-{delivery_id}-redrive")
    assert (redrive.kind, redrive.payload) == (
        "notifications.deliver",
        {"delivery_id": delivery_id},
    )
    assert redrive.max_attempts == settings.ALERT_MAX_ATTEMPTS - 2
    assert delivery_id not in stuck_deliveries()  # the new job drives it now

    end_job(f"alert-delivery-{delivery_id}-redrive", "failed", "WORKER_LOST")
    assert stuck_deliveries()[delivery_id] == "failed"
    delivery = AlertDelivery.objects.get(pk=delivery_id)
    assert delivery.status == "failed"
    assert delivery.last_error == "abandoned: its delivery job ended failed (WORKER_LOST)"


def test_a_direct_delivery_whose_thread_died_is_redriven(db: Any) -> None:
    delivery_id = one_delivery(direct=True)  # its thread never starts: the test never commits
    assert delivery_id not in stuck_deliveries()  # it may still be trying

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE health_alertdelivery SET updated_at = now() - interval '6 minutes' "
            "WHERE id = %s",
            [delivery_id],
        )
    assert stuck_deliveries()[delivery_id] == "redriven"
    assert Job.objects.filter(idempotency_key=f"alert-delivery-{delivery_id}-redrive").exists()
    assert "no job (its process ended)" in AlertDelivery.objects.get(pk=delivery_id).last_error


def test_a_delivery_with_no_attempt_left_is_failed(db: Any, settings: Any) -> None:
    delivery_id = one_delivery()
    AlertDelivery.objects.filter(pk=delivery_id).update(
        attempts=settings.ALERT_MAX_ATTEMPTS, status="retrying"
    )
    end_job(f"alert-delivery-{delivery_id}", "timed_out", "JOB_TIMEOUT")

    assert stuck_deliveries()[delivery_id] == "failed"
    assert AlertDelivery.objects.get(pk=delivery_id).status == "failed"
    assert not Job.objects.filter(idempotency_key=f"alert-delivery-{delivery_id}-redrive").exists()
