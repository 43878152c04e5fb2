"""Security probes over every documented API operation (a fast part of the drills issue)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.errors.helpers import assert_envelope

# Parameters that make a path concrete; the probe only needs the request to reach auth.
SAMPLES = {
    "support_id": str(uuid.uuid4()),
    "job_id": str(uuid.uuid4()),
    "name": "probe",
    "slug": "probe-service",
}
PUBLIC = {("get", "/api/v1/health/")}


def operations() -> list[tuple[str, str]]:
    document = (
        APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    )
    found = []
    for path, item in document["paths"].items():
        for method in item:
            concrete = re.sub(r"\{(\w+)\}", lambda m: SAMPLES[m.group(1)], path)
            found.append((method, concrete))
    return sorted(found)


def call(api: APIClient, method: str, path: str) -> Any:
    return getattr(api, method)(path, {}, format="json")


@pytest.mark.django_db
def test_every_operation_without_a_token_is_401_in_the_envelope() -> None:
    protected = [op for op in operations() if op not in PUBLIC]
    assert len(protected) >= 20  # the schema really listed the API
    for method, path in protected:
        assert_envelope(call(APIClient(), method, path), 401, "NOT_AUTHENTICATED")


@pytest.mark.django_db
def test_every_operation_refuses_a_user_in_no_group(nobody_user: Any, api_as: Any) -> None:
    api = api_as(nobody_user)
    for method, path in operations():
        if (method, path) in PUBLIC or path == "/api/v1/":
            continue
        response = call(api, method, path)
        assert response.status_code == 403, (method, path, response.status_code)
        assert_envelope(response, 403, "PERMISSION_DENIED")


@pytest.mark.django_db
def test_support_cannot_act(support_user: Any, api_as: Any) -> None:
    api = api_as(support_user)
    for method, path in (
        ("post", "/api/v1/breakers/probe/reset/"),
        ("post", "/api/v1/breakers/probe/force-open/"),
        ("post", f"/api/v1/jobs/{SAMPLES['job_id']}/cancel/"),
        ("post", "/api/v1/lookups/warm/"),
        ("post", "/api/v1/micro-services/"),
        ("post", "/api/v1/jobs/"),
    ):
        assert call(api, method, path).status_code == 403, (method, path)


@pytest.mark.django_db
def test_injection_strings_are_stored_inert_and_rendered_escaped(
    client_user: Any, support_user: Any, api_as: Any, client: Any
) -> None:
    from controlplane.errors.models import ErrorRecord

    hostile = "<script>alert(1)</script>'; DROP TABLE errors_errorrecord; --"
    response = api_as(client_user).post(
        "/api/v1/errors/",
        {
            "code": "PROBE",
            "message": hostile,
            "service": "probe",
            "user_message": hostile,
            "context": {"note": hostile},
        },
        format="json",
    )
    assert response.status_code == 201
    record = ErrorRecord.objects.get(support_id=response.json()["support_id"])
    assert record.technical_message == hostile  # stored as text, the table still there
    client.force_login(support_user)
    page = client.get(f"/admin/errors/errorrecord/{record.pk}/change/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    slug = api_as(client_user).get("/api/v1/lookups/' OR 1=1 --/")
    assert_envelope(slug, 400, "INVALID_SLUG")
