from __future__ import annotations

import pytest
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient


@pytest.mark.django_db
def test_it_serves_an_openapi_3_document() -> None:
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Reliability control plane API"
    validate_schema(document)  # drf-spectacular's OpenAPI 3 JSON-schema validation


@pytest.mark.django_db
def test_every_operation_documents_the_error_envelope_and_pages() -> None:
    document = (
        APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    )
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            authenticated = path != "/api/v1/health/"
            expected = {"400", "500"} | ({"401", "403", "503"} if authenticated else set())
            documented = {status for status in operation["responses"] if status >= "400"}
            assert expected <= documented, (method, path, expected - documented)
            for status in documented:
                if (path, status) == ("/api/v1/health/", "503"):
                    continue  # the health report itself, documented by the view
                body = operation["responses"][status]["content"]["application/json"]["schema"]
                assert body == envelope, (method, path, status)
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    jobs_page = document["paths"]["/api/v1/jobs/"]["get"]["responses"]["200"]
    schema_ref = jobs_page["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    assert set(document["components"]["schemas"][schema_ref]["properties"]) == {
        "next",
        "previous",
        "results",
    }


@pytest.mark.django_db
def test_it_renders_swagger_ui_from_local_assets() -> None:
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "SwaggerUIBundle" in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn." not in html
