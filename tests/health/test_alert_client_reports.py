"""A client's error report (POST /api/v1/errors/) is the client's business: it announces no
new error group and makes no burst, on the direct path or in the sweep's catch-up, so no
API client can page ops or grow the alert tables with reports (invariant 10)."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.health.conditions import catch_up_groups, error_bursts
from controlplane.health.models import AlertEvent


def report(api: Any, service: str) -> None:
    body = {"code": "CLIENT_UPLOAD_FAILED", "message": "upload broke", "service": service}
    response = api.post("/api/v1/errors/", body, format="json")
    assert response.status_code == 201, response.content


def events_about(service: str) -> list[str]:
    return list(AlertEvent.objects.filter(details__service=service).values_list("kind", flat=True))


def test_a_reported_error_announces_no_new_group(
    client_user: Any, api_as: Any, settings: Any
) -> None:
    service = f"client-{uuid.uuid4().hex[:8]}"
    report(api_as(client_user), service)

    assert events_about(service) == []
    catch_up_groups()  # the sweep does not announce it either
    assert events_about(service) == []


def test_reported_errors_make_no_burst(client_user: Any, api_as: Any, settings: Any) -> None:
    settings.ALERT_ERROR_BURST_COUNT = 2
    service = f"client-{uuid.uuid4().hex[:8]}"
    api = api_as(client_user)
    for _ in range(3):
        report(api, service)

    error_bursts()
    assert events_about(service) == []
