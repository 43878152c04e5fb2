"""Every response carries X-Request-Id: a sane incoming one is kept, anything else replaced."""

from __future__ import annotations

import re
from typing import Any

import pytest
from rest_framework.test import APIClient

from controlplane.errors.models import ErrorRecord

pytestmark = pytest.mark.django_db

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}")


def _generated(response: Any) -> str:
    value = response["X-Request-Id"]
    assert UUID.fullmatch(value), value
    return value


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/healthz", 200),
        ("/api/v1/jobs/", 401),  # DRF's envelope
        ("/api/v1/no-such-thing/", 404),  # the /api/ catch-all
        ("/nowhere/", 404),  # Django's handler404
        ("/admin/", 302),
    ],
)
def test_it_is_on_every_response(path: str, status: int) -> None:
    response = APIClient().get(path)
    assert response.status_code == status
    _generated(response)


def test_each_request_gets_its_own() -> None:
    assert _generated(APIClient().get("/healthz")) != _generated(APIClient().get("/healthz"))


@pytest.mark.parametrize("debug", [False, True])
def test_an_error_before_any_view_carries_it_and_its_record_too(debug: bool, settings: Any) -> None:
    settings.DEBUG = debug
    refused = APIClient().get(
        "/api/v1/lookups/stats/", HTTP_HOST="evil.example", HTTP_X_REQUEST_ID="edge-1"
    )
    assert refused.status_code == 400
    assert refused["X-Request-Id"] == "edge-1"
    record = ErrorRecord.objects.get(support_id=refused.json()["error"]["support_id"])
    assert record.request_id == "edge-1"


@pytest.mark.parametrize(
    "sent",
    [
        "3f1c8a52-0d7e-4c38-9a55-1d2b8e6f7a90",
        "01HZX3K5N8Q2W7R4T6Y9B0C1D2",
        "lb.7f3a:42-b_1",
        "a" * 128,
    ],
)
def test_a_sane_incoming_id_is_kept(sent: str) -> None:
    assert APIClient().get("/healthz", HTTP_X_REQUEST_ID=sent)["X-Request-Id"] == sent


@pytest.mark.parametrize(
    "sent",
    [
        "a" * 129,  # too long
        "two words",
        "<script>alert(1)</script>",
        "id\tforged=field",
        "-leading-dash",
        "ünïcode",
        "",
    ],
)
def test_a_bogus_incoming_id_is_replaced(sent: str) -> None:
    response = APIClient().get("/api/v1/no-such-thing/", HTTP_X_REQUEST_ID=sent)
    value = _generated(response)
    assert value != sent
    record = ErrorRecord.objects.get(support_id=response.json()["error"]["support_id"])
    assert record.request_id == value
